import WorkerRuntime

// notifier: alerts, trades and orders to the sinks configured. Configuration: README, "The notifier".
await WorkerMain.runNotifier()
