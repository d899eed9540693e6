print("drain-probe: not built yet")
