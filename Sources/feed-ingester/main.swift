import WorkerRuntime

// feed-ingester: wiring only. This build connects to its servers and reports health; its processing
// arrives with its own issue, and until then the worker says so rather than pretend.
await WorkerMain.runConnectOnly(worker: "feed-ingester", defaultPort: 9101, needs: [.bus, .cache], notYet: "consume exchange market data and publish candles")
