"""svgan.serve: many concurrent talking-head streams on Ray Serve (`svgan-serve`, DESIGN §9d)."""
