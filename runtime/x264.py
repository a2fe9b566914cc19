"""libx264's settings that the command-line tools offer, in a module without PyAV (`svgan-bench train` runs on
machines that have none)."""

# libx264's presets, fastest first: the only values its `preset` option takes.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
