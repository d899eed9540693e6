import WorkerRuntime

// ai-analyst: wiring only. This build connects to its servers and reports health; its processing
// arrives with its own issue, and until then the worker says so rather than pretend.
await WorkerMain.runConnectOnly(worker: "ai-analyst", defaultPort: 9103, needs: [.bus, .cache, .store], notYet: "ask analysts for trade decisions")
