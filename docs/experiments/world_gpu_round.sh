#!/usr/bin/env bash
# One round of demo-world training on a lent GPU (issue 6, blinks): one face set, three StyleGAN2 variants side by
# side on the one GPU (no eye discriminator, --eye-weight 1, --eye-weight 3), a feature-weighted pSp for each, then
# docs/experiments/world_gan_variants.py on all three. Runs from the repository root, without installing svgan.
#
#   docs/experiments/world_gpu_round.sh OUT READER [GAN_MINUTES] [PSP_MINUTES] [FACES] [DEVICE]
#
# OUT gets one tar per variant (stylegan2.pt, psp.pt, samples, reconstructions, metrics), logs.tgz and
# variants.json: five files, within what the device tool brings back. A smoke round (seconds) runs first, so a
# broken set-up fails before the long runs start.
set -euo pipefail
out=$1 reader=$2 gan_minutes=${3:-4.5} psp_minutes=${4:-2} faces=${5:-100000} device=${6:-cuda}
work=${WORK:-/tmp/world-round}
logs=$work/logs
cores=$(nproc)
mkdir -p "$out" "$logs"
trap 'tar -czf "$out/logs.tgz" -C "$work" logs' EXIT
# Runs a step with its output in logs/NAME.log; on failure shows the log's end and stops the round.
step() { local name=$1; shift; "$@" > "$logs/$name.log" 2>&1 || { tail -c 3000 "$logs/$name.log"; exit 1; }; }

source bench/package_layout.sh
svgan_package_layout "$work"
world() { python3 -P -c 'from svgan.world.cli import main; main()' "$@"; }
variants() { python3 docs/experiments/world_gan_variants.py --reader "$reader" --device "$device" "$@"; }
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")'

echo "== smoke round $(date +%T)"
smoke=$work/smoke
rm -rf "$smoke"
step smoke-dataset world dataset "$smoke/faces.npz" --faces 64 --workers 2
step smoke-gan world train-stylegan "$smoke/gan" --dataset "$smoke/faces.npz" --eye-weight 1 --iterations 20 \
    --batch-size 8 --checkpoint-every 10 --device "$device"
step smoke-psp world train-psp "$smoke/psp" --stylegan "$smoke/gan/stylegan2.pt" --iterations 10 \
    --dataset-size 32 --device "$device"
step smoke-variants variants --samples 64 --frames 32 "smoke:$smoke/gan/stylegan2.pt:$smoke/psp/psp.pt"
echo "smoke round passed $(date +%T)"

echo "== faces $(date +%T)"
step dataset world dataset "$work/faces.npz" --faces "$faces" --workers "$cores"

echo "== StyleGAN2 x3, $gan_minutes min $(date +%T)"
threads=$(( cores / 3 > 1 ? cores / 3 : 1 ))
names=(base eye1 eye3)
weights=(0 1 3)
pids=()
for k in 0 1 2; do
    world train-stylegan "$work/gan-${names[$k]}" --dataset "$work/faces.npz" --eye-weight "${weights[$k]}" \
        --batch-size 64 --minutes "$gan_minutes" --checkpoint-every 1000 --threads "$threads" --device "$device" \
        --json "$work/gan-${names[$k]}/summary.json" > "$logs/gan-${names[$k]}.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || echo "a StyleGAN2 run failed (see its log)"; done
for name in "${names[@]}"; do tail -n 2 "$work/gan-$name/metrics.csv"; done

echo "== pSp x3, $psp_minutes min $(date +%T)"
pids=()
for name in "${names[@]}"; do
    world train-psp "$work/psp-$name" --stylegan "$work/gan-$name/stylegan2.pt" --batch-size 32 --feature-weight 10 \
        --dataset-size 30000 --workers "$threads" --minutes "$psp_minutes" --checkpoint-every 1000 \
        --threads "$threads" --device "$device" --json "$work/psp-$name/summary.json" > "$logs/psp-$name.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || echo "a pSp run failed (see its log)"; done
for name in "${names[@]}"; do tail -n 1 "$work/psp-$name/metrics.csv"; done

echo "== variants $(date +%T)"
variants --workers "$cores" $(for name in "${names[@]}"; do
    echo "$name:$work/gan-$name/stylegan2.pt:$work/psp-$name/psp.pt"; done) > "$out/variants.json" \
    2> "$logs/variants.log" || tail -c 3000 "$logs/variants.log"
cat "$out/variants.json"
for name in "${names[@]}"; do
    tar -czf "$out/$name.tgz" -C "$work" --exclude='*/checkpoint.pt' --exclude='*/dataset.npz' \
        "gan-$name" "psp-$name"
done
ls -la "$out"
echo "== done $(date +%T)"
