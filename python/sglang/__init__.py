"""SGLang (the parts this tree carries: the sampling layer and its MUSA kernel branch)."""
