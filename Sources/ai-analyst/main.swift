import WorkerRuntime

// ai-analyst: signals in, decisions out. Configuration: README, "Configuration".
await WorkerMain.runAIAnalyst()
