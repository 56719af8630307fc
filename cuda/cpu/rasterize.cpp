// OpenMP launcher of the tile rasterizer: one tile per task, the tile's pixel state held in small
// arrays and the tile's depth-sorted primitives in the outer loop, so each footprint is read once
// per tile, only the pixels inside the primitive's box (and, for kernels with a row_span, inside
// the reach of each row) are evaluated, and the tile stops as soon as every pixel has saturated. No torch: raw pointers only.
//
// Determinism: gradients (and the per-primitive max weight) are first written per intersection,
// each row owned by the one tile that visits it, then reduced over intersections in sorted order.
#include <algorithm>
#include <vector>

#include "../include/rasterize.h"

namespace recon {
namespace cpu {
namespace {

struct TileGeometry {
  int b;            // camera
  PixelRect rect;   // pixels [x0, x1) x [y0, y1) (edge tiles are partial)
  int start, end;   // intersection range
  int width() const { return rect.x1 - rect.x0; }
  int pixels() const { return (rect.x1 - rect.x0) * (rect.y1 - rect.y0); }
};

inline TileGeometry tile_geometry(const RasterParams& p, const int32_t* ranges, int tile) {
  const int tiles = p.tiles_x * p.tiles_y;
  TileGeometry g;
  g.b = tile / tiles;
  const int t = tile % tiles;
  g.rect.x0 = (t % p.tiles_x) * p.tile_size;
  g.rect.y0 = (t / p.tiles_x) * p.tile_size;
  g.rect.x1 = std::min(g.rect.x0 + p.tile_size, p.width);
  g.rect.y1 = std::min(g.rect.y0 + p.tile_size, p.height);
  g.start = ranges[2 * tile];
  g.end = ranges[2 * tile + 1];
  return g;
}

// Kernel values of one primitive along a row of pixels, computed in a separate tight loop so the
// compiler can vectorise simple kernels (the Gaussian's exp) before the branchy blending.
template <typename K, typename T>
struct RowKernel {
  std::vector<T> k, w;
  explicit RowKernel(int length) : k(length), w(static_cast<size_t>(length) * K::V) {}
  const T* weights(int i) const { return w.data() + static_cast<size_t>(i) * K::V; }
  void evaluate(const T* fp, int x0, int x1, int y) {
    const T py = T(y) + T(0.5);
    T* kk = k.data();
    T* ww = w.data();
    for (int x = x0; x < x1; ++x)
      kk[x - x0] = K::template eval<T>(fp, T(x) + T(0.5), py, ww + (x - x0) * K::V);
  }
};

// FixedC > 0: the channel count as a compile-time constant (the inlined per-pixel loops over
// channels unroll; RGB training renders take this path); 0: p.C at run time.
template <typename K, int FixedC, typename T>
void forward_tiles(const ForwardArgs<T>& a) {
  const RasterParams& p = a.p;
  const int C = FixedC > 0 ? FixedC : p.C;
  const int num_tiles = p.B * p.tiles_x * p.tiles_y;
#pragma omp parallel
  {
    std::vector<T> trans, acc;
    std::vector<int32_t> last, median;
    std::vector<unsigned char> done;
    RowKernel<K, T> row(p.tile_size);
#pragma omp for schedule(dynamic, 1)
    for (int tile = 0; tile < num_tiles; ++tile) {
      const TileGeometry g = tile_geometry(p, a.tile_ranges, tile);
      const int n = g.pixels(), tw = g.width();
      trans.assign(n, T(1));
      acc.assign(static_cast<size_t>(n) * C, T(0));
      last.assign(n, g.start - 1);
      median.assign(n, -1);
      done.assign(n, 0);
      int num_active = n;
      // Primitives front to back, each over the pixels of the tile its box reaches.
      for (int i = g.start; i < g.end && num_active > 0; ++i) {
        const int prim = a.isect_prims[i];
        const PixelRect r = clip_to_bounds(g.rect, a.bounds, prim);
        const T* fp = a.params + static_cast<size_t>(prim) * K::P;
        const T opacity = a.opacities[prim];
        const T* feat = a.features + static_cast<size_t>(prim) * K::V * C;
        T best = T(0);
        for (int y = r.y0; y < r.y1; ++y) {
          int x0 = r.x0, x1 = r.x1;
          narrow_row<K>(fp, opacity, y, x0, x1);
          row.evaluate(fp, x0, x1, y);
          for (int x = x0; x < x1; ++x) {
            const int q = (y - g.rect.y0) * tw + (x - g.rect.x0);
            if (done[q]) continue;
            T weight = T(0);
            const T before = trans[q];
            const int res = blend_step<K>(row.k[x - x0], row.weights(x - x0), opacity, feat, C,
                                          trans[q], acc.data() + static_cast<size_t>(q) * C,
                                          weight);
            if (res == STEP_SATURATED) {
              done[q] = 1;
              --num_active;
            } else if (res == STEP_BLENDED) {
              last[q] = i;
              if (before >= T(MEDIAN_TRANSMITTANCE) && trans[q] < T(MEDIAN_TRANSMITTANCE))
                median[q] = i;
              best = std::max(best, weight);
            }
          }
        }
        a.isect_weight[i] = best;
      }
      for (int y = g.rect.y0; y < g.rect.y1; ++y)
        for (int x = g.rect.x0; x < g.rect.x1; ++x) {
          const int q = (y - g.rect.y0) * tw + (x - g.rect.x0);
          const size_t pix = (static_cast<size_t>(g.b) * p.height + y) * p.width + x;
          std::copy(acc.begin() + static_cast<size_t>(q) * C,
                    acc.begin() + static_cast<size_t>(q + 1) * C, a.out + pix * C);
          a.final_T[pix] = trans[q];
          a.last_idx[pix] = last[q];
          a.median_idx[pix] = median[q];
        }
    }
  }
  // Reduce per-intersection maxima in sorted order (intersections a tile never reached stay 0).
  for (int i = 0; i < p.num_isects; ++i) {
    T& m = a.max_weight[a.isect_prims[i]];
    m = std::max(m, a.isect_weight[i]);
  }
}

template <typename K, int FixedC, typename T>
void backward_tiles(const BackwardArgs<T>& a) {
  const RasterParams& p = a.p;
  const int C = FixedC > 0 ? FixedC : p.C;
  const int VC = K::V * C;
  const bool with_abs = a.absgrad != nullptr;
  const int stride = K::P + 1 + VC + (with_abs ? K::P : 0);
  const int num_tiles = p.B * p.tiles_x * p.tiles_y;
#pragma omp parallel
  {
    std::vector<T> trans, S;
    std::vector<int32_t> last;
    RowKernel<K, T> row(p.tile_size);
#pragma omp for schedule(dynamic, 1)
    for (int tile = 0; tile < num_tiles; ++tile) {
      const TileGeometry g = tile_geometry(p, a.tile_ranges, tile);
      if (g.end <= g.start) continue;
      const int n = g.pixels(), tw = g.width();
      trans.resize(n);
      last.resize(n);
      int max_last = g.start - 1;
      for (int y = g.rect.y0; y < g.rect.y1; ++y)
        for (int x = g.rect.x0; x < g.rect.x1; ++x) {
          const int q = (y - g.rect.y0) * tw + (x - g.rect.x0);
          const size_t pix = (static_cast<size_t>(g.b) * p.height + y) * p.width + x;
          last[q] = a.last_idx[pix];
          trans[q] = a.final_T[pix];
          max_last = std::max(max_last, last[q]);
        }
      S.assign(static_cast<size_t>(n) * C, T(0));
      for (int i = max_last; i >= g.start; --i) {
        const int prim = a.isect_prims[i];
        const PixelRect r = clip_to_bounds(g.rect, a.bounds, prim);
        const T* fp = a.params + static_cast<size_t>(prim) * K::P;
        const T opacity = a.opacities[prim];
        const T* feat = a.features + static_cast<size_t>(prim) * VC;
        T* grads = a.scratch + static_cast<size_t>(i) * stride;  // owned by this tile only
        T* v_fp = grads;
        T* v_op = grads + K::P;
        T* v_feat = grads + K::P + 1;
        T* abs_fp = with_abs ? grads + K::P + 1 + VC : nullptr;
        for (int y = r.y0; y < r.y1; ++y) {
          int x0 = r.x0, x1 = r.x1;
          narrow_row<K>(fp, opacity, y, x0, x1);
          row.evaluate(fp, x0, x1, y);
          const T py = T(y) + T(0.5);
          for (int x = x0; x < x1; ++x) {
            const int q = (y - g.rect.y0) * tw + (x - g.rect.x0);
            if (i > last[q]) continue;
            const size_t pix = (static_cast<size_t>(g.b) * p.height + y) * p.width + x;
            backward_blend_step<K, PlainAdd>(
                fp, row.k[x - x0], row.weights(x - x0), opacity, feat, C, T(x) + T(0.5), py,
                trans[q], S.data() + static_cast<size_t>(q) * C, a.v_out + pix * C,
                a.v_alpha[pix], a.final_T[pix], v_fp, v_op, v_feat, abs_fp);
          }
        }
      }
    }
  }
  // Reduce the per-intersection rows into per-primitive gradients, in sorted order.
  for (int i = 0; i < p.num_isects; ++i) {
    const size_t prim = static_cast<size_t>(a.isect_prims[i]);
    const T* row = a.scratch + static_cast<size_t>(i) * stride;
    for (int j = 0; j < K::P; ++j) a.v_params[prim * K::P + j] += row[j];
    a.v_opacities[prim] += row[K::P];
    for (int j = 0; j < VC; ++j) a.v_features[prim * VC + j] += row[K::P + 1 + j];
    if (with_abs)
      for (int j = 0; j < K::P; ++j) a.absgrad[prim * K::P + j] += row[K::P + 1 + VC + j];
  }
}

}  // namespace

template <typename T>
bool rasterize_forward(int kind, const ForwardArgs<T>& args) {
  return dispatch_kind(kind, [&](auto kernel) {
    using K = decltype(kernel);
    args.p.C == 3 ? forward_tiles<K, 3>(args) : forward_tiles<K, 0>(args);
  });
}

template <typename T>
bool rasterize_backward(int kind, const BackwardArgs<T>& args) {
  return dispatch_kind(kind, [&](auto kernel) {
    using K = decltype(kernel);
    args.p.C == 3 ? backward_tiles<K, 3>(args) : backward_tiles<K, 0>(args);
  });
}

int kernel_params(int kind) {
  int P = 0;
  dispatch_kind(kind, [&](auto kernel) { P = decltype(kernel)::P; });
  return P;
}

int kernel_vertices(int kind) {
  int V = 0;
  dispatch_kind(kind, [&](auto kernel) { V = decltype(kernel)::V; });
  return V;
}

int backward_scratch_stride(int kind, int C, bool absgrad) {
  const int P = kernel_params(kind);
  return P + 1 + kernel_vertices(kind) * C + (absgrad ? P : 0);
}

template bool rasterize_forward<float>(int, const ForwardArgs<float>&);
template bool rasterize_forward<double>(int, const ForwardArgs<double>&);
template bool rasterize_backward<float>(int, const BackwardArgs<float>&);
template bool rasterize_backward<double>(int, const BackwardArgs<double>&);

}  // namespace cpu
}  // namespace recon
