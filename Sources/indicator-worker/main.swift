import WorkerRuntime

// indicator-worker: wiring only. This build connects to its servers and reports health; its processing
// arrives with its own issue, and until then the worker says so rather than pretend.
await WorkerMain.runConnectOnly(worker: "indicator-worker", defaultPort: 9102, needs: [.bus, .cache], notYet: "compute indicators and signals")
