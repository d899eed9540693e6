import WorkerRuntime

// notifier: wiring only. This build connects to its servers and reports health; its processing
// arrives with its own issue, and until then the worker says so rather than pretend.
await WorkerMain.runConnectOnly(worker: "notifier", defaultPort: 9105, needs: [.bus, .cache], notYet: "deliver alerts to Telegram, Discord, Slack or webhooks")
