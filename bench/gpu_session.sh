#!/usr/bin/env bash
# One lease of a CUDA machine, in priority order: build, rasterizer benchmark against gsplat, GPU
# tests, lego_200 fits (recon-cuda vs --backend gsplat), CPU thread scaling. Each stage has its
# own time limit, so a slow stage cannot starve the ones after it; logs go to $OUT (or ./gpu-out).
#
# The machine has the CUDA torch but not recon's pure-Python dependencies: carry their wheels in
# .whl/ (tyro, docstring-parser, typeguard, plyfile, trimesh, gsplat) and the data in .devdata/
# (lego_100.npz, nerf_synthetic_lego_200), both ignored by git. open3d, pycolmap and playwright
# do not travel (too large), so only the tests that need none of them run there.
#
#     bash bench/gpu_session.sh [stages...]   # stages: build raster tests fits cpu (default: all)
set -u
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
STAGES=${*:-build raster tests fits cpu}
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 RECON_CACHE=/tmp/recon-cache
export RECON_SHARED_DATA=$PWD/.devdata PYTHONPATH=/tmp/site:$PWD
log() { echo "## $(date +%T) $*" | tee -a "$OUT/log.txt"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, gsplat; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'gsplat', gsplat.__version__, 'sms', torch.cuda.get_device_properties(0).multi_processor_count)"
    nproc
} 2>&1 | tee -a "$OUT/log.txt"

if has build; then
    log "build (gsplat JIT in the background, recon JIT in the foreground)"
    ( time python3 -c "from gsplat.cuda._backend import _C; assert _C is not None" ) \
        > "$OUT/gsplat_build.log" 2>&1 &
    gsplat_pid=$!
    if ! ( time RECON_BUILD_VERBOSE=1 timeout 300 python3 -c "
import torch
from recon._ops.build import load_ops, with_cuda
assert with_cuda(), 'torch sees no CUDA'
load_ops()
print('recon cuda ops:', hasattr(torch.ops.recon, 'rasterize_fwd'))" ) > "$OUT/recon_build.log" 2>&1; then
        tail -60 "$OUT/recon_build.log" | tee -a "$OUT/log.txt"
        log "recon build FAILED"; kill $gsplat_pid; exit 1
    fi
    grep -E "^real|recon cuda ops" "$OUT/recon_build.log" | tee -a "$OUT/log.txt"
    wait $gsplat_pid || { tail -40 "$OUT/gsplat_build.log" | tee -a "$OUT/log.txt"; log "gsplat build FAILED"; }
    grep -E "^real" "$OUT/gsplat_build.log" | sed 's/^/gsplat /' | tee -a "$OUT/log.txt"
fi

if has raster; then
    log "rasterizer benchmark (median of 20 after warm-up)"
    timeout 150 python3 bench/rasterizer_cuda.py --counts 100000,1000000 \
        --other-counts 100000,1000000 --repeats 20 2>&1 | tee "$OUT/raster_cuda.jsonl" \
        | grep -E "ratio|recon_over|convex|triangle|rasterizer_cuda\"," | tee -a "$OUT/log.txt"
    timeout 40 python3 bench/rasterizer_cuda.py --profile 1920x1080:1000000 > "$OUT/profile.txt" 2>&1
fi

if has tests; then
    log "gpu tests"
    # Every gpu-marked test; modules that import open3d/pycolmap/playwright fail to collect here.
    OMP_NUM_THREADS=4 timeout 240 python3 -m pytest -q -m gpu -n 4 -p no:cacheprovider \
        --continue-on-collection-errors -rfE tests > "$OUT/tests.log" 2>&1
    echo "pytest rc $?" >> "$OUT/tests.log"
    grep -E "passed|failed|FAILED|ERROR|rc " "$OUT/tests.log" | tail -40 | tee -a "$OUT/log.txt"
fi

if has fits; then
    log "lego_200 fits, 7000 steps, default strategy"
    for backend in cuda gsplat; do
        timeout 150 python3 bench/fit.py --data .devdata/nerf_synthetic_lego_200 --preset default \
            --steps 7000 --eval-every 7000 --models gaussians --strategies default \
            --backend $backend 2>&1 | tee -a "$OUT/fits.jsonl" | grep fit_summary \
            | tee -a "$OUT/log.txt"
    done
fi

if has cpu; then
    log "CPU scaling (OMP_NUM_THREADS 1..16)"
    for t in 1 2 4 8 16; do
        OMP_NUM_THREADS=$t timeout 40 python3 bench/rasterizer.py --sizes 800 \
            --counts 100000 --repeats 3 --peer-max-pixels-x-gaussians 0 2>&1 \
            | grep recon-cpu | tee -a "$OUT/cpu_scaling.jsonl"
        OMP_NUM_THREADS=$t timeout 60 python3 bench/fit.py --backend cpu --threads $t \
            --steps 200 --eval-every 200 --models gaussians --strategies mcmc 2>&1 \
            | grep fit_summary | tee -a "$OUT/cpu_scaling.jsonl"
    done
fi
log "done"
