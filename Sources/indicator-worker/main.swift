import WorkerRuntime

// indicator-worker: wiring only (see WorkerMain.runIndicatorWorker).
await WorkerMain.runIndicatorWorker()
