import WorkerRuntime

// executor: decisions through the risk gateway to the paper venue. Configuration: README, "The executor".
await WorkerMain.runExecutor()
