// CUDA launchers of the tile binning (recon::bin_tiles), the GPU twin of
// recon.render.binning.bin_footprints (the torch path, kept for the CPU and as the reference).
// Plain C++ declarations for bindings_cuda.cpp; `stream` is a cudaStream_t. The caller allocates
// every buffer (torch's caching allocator), so the binning itself never calls cudaMalloc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../include/binning.h"

namespace recon {
namespace gpu {

// counts[B*N]: tiles touched by each pixel box bounds[B*N,4] = [xmin, ymin, xmax, ymax).
void tile_counts(const BinGrid& g, const int32_t* bounds, int32_t* counts, void* stream);

// Writes each primitive's keys (camera·tile id << 32 | depth float bits) and flat primitive ids
// at [ends[i] - counts[i], ends[i]), tiles in row-major order (as the torch binning does).
void tile_keys(const BinGrid& g, const int32_t* bounds, const float* depths, const int64_t* ends,
               uint64_t* keys, int32_t* prims, void* stream);

// Bytes of scratch that sort_pairs needs for n pairs.
size_t sort_pairs_scratch(int64_t n, int end_bit);

// Stable LSD radix sort of (keys, values) on bits [0, end_bit) of the keys only.
void sort_pairs(void* scratch, size_t scratch_bytes, const uint64_t* keys_in, uint64_t* keys_out,
                const int32_t* values_in, int32_t* values_out, int64_t n, int end_bit,
                void* stream);

// ranges[num_tiles,2] = [start, end) of every tile id in sorted_keys[M] (the high 32 bits), the
// same values torch.searchsorted gives (empty tiles get [e, e]); all of ranges is written.
void tile_ranges(const uint64_t* sorted_keys, int64_t M, int64_t num_tiles, int32_t* ranges,
                 void* stream);

}  // namespace gpu
}  // namespace recon
