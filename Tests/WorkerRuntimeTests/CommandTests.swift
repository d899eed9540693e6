import Testing
import WorkerRuntime

@Suite("Command")
struct CommandTests {
    @Test("captures stdout and stderr, and the exit code of a failure")
    func capturesOutput() throws {
        #expect(try Command.run("/bin/sh", ["-c", "echo out; echo err >&2"]) == "out\nerr\n")
        #expect { try Command.run("/bin/sh", ["-c", "echo oops >&2; exit 3"]) } throws: { error in
            guard let failure = error as? CommandFailed else { return false }
            return failure.status == 3 && failure.output == "oops\n"
        }
    }
}
