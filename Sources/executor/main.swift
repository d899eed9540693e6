import WorkerRuntime

// executor: wiring only. This build connects to its servers and reports health; its processing
// arrives with its own issue, and until then the worker says so rather than pretend.
await WorkerMain.runConnectOnly(worker: "executor", defaultPort: 9104, needs: [.bus, .store], notYet: "execute decisions (risk checks, venues, stops)")
