# Sourced by the GPU rounds (bench/gpu_round.sh, docs/experiments/world_gpu_round.sh), from the repository root:
# builds the package layout pyproject.toml declares (svgan.models = models/, ...) under $1 without pip, and puts it
# on PYTHONPATH, for machines where svgan is not installed.
svgan_package_layout() {
    local pkg=$1/pkg/svgan sub
    mkdir -p "$pkg"
    cp svgan/*.py "$pkg"/
    for sub in models training export runtime serve world bench; do ln -sfn "$PWD/$sub" "$pkg/$sub"; done
    export PYTHONPATH=$1/pkg${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
}
