"""svgan.world: the demo world, a procedural talking-face domain small enough to train on a CPU.

It stands in for FFHQ + a real training video, end to end: `renderer` draws cartoon faces from identity and
state parameters and makes talking videos; `stylegan2_trainer` and `psp_trainer` train the world's own small
StyleGAN2 and pSp encoder (in resumable chunks, `chunked_run`); `attribute_reader` is a network that reads the
state (mouth, blink, pose) back from pixels, and `measure` uses it to score a bundle's streams; `cli` is
`svgan-world`, and `demo` is `make demo`. Its trained bundle ships in `svgan/demo_world/`
(`docs/demo-world.md` tells how it was built). It may import every package below it.
"""
