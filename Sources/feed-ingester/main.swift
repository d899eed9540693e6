import WorkerRuntime

// feed-ingester: wiring only (see WorkerMain.runFeedIngester).
await WorkerMain.runFeedIngester()
