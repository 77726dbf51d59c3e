// SVG line plots, the weight grid PNG (stb_image_write) and atomic file writes.
#include "report.h"

#include "nn/checkpoint.h"

#include <fmt/format.h>
#include <stb_image_write.h>

#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <system_error>

namespace report {

void write_file(const std::filesystem::path& path, const std::string& contents) {
  nn::write_file_atomically(path, contents);  // the checkpoint's temp file, fsync and rename
}

void check_writable(const std::filesystem::path& dir) {
  const std::filesystem::path probe = dir / fmt::format(".write-test.{}", ::getpid());
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (!f)
    throw std::runtime_error(
        fmt::format("cannot write into {}: {}", dir.string(), std::strerror(errno)));
  std::fclose(f);
  std::error_code ignored;
  std::filesystem::remove(probe, ignored);
}

namespace {

// Round numbers for axis ticks: about `count` of them covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int count) {
  const double raw = (hi - lo) / std::max(1, count);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(t);
  return ticks;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string line_plot_svg(const std::vector<Series>& series, const PlotOptions& o) {
  const double left = 70, right = 20, top = 40, bottom = 55;
  const double W = o.width - left - right, H = o.height - top - bottom;
  auto ty = [&](double y) { return o.log_y ? std::log10(std::max(y, 1e-12)) : y; };

  double x0 = std::numeric_limits<double>::max(), x1 = std::numeric_limits<double>::lowest();
  double y0 = x0, y1 = x1;
  for (const Series& s : series)
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
    }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad, y1 += pad;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * W; };
  auto py = [&](double y) { return top + (1.0 - (ty(y) - y0) / (y1 - y0)) * H; };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
      "{1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{3}</text>\n",
      o.width, o.height, left + W / 2, escape(o.title));
  // Grid and tick labels.
  for (double t : nice_ticks(x0, x1, 8))
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#e5e5e5\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4:g}</text>\n",
        px(t), top, top + H, top + H + 16, t);
  // On a log axis, ticks sit at 1, 2 and 5 times powers of ten (y0, y1 are log10 values).
  std::vector<double> y_ticks;
  if (o.log_y) {
    for (double e = std::floor(y0); e <= y1; e += 1.0)
      for (double m : {1.0, 2.0, 5.0})
        if (const double t = e + std::log10(m); t >= y0 && t <= y1) y_ticks.push_back(t);
  } else {
    y_ticks = nice_ticks(y0, y1, 6);
  }
  for (double t : y_ticks) {
    const double y = top + (1.0 - (t - y0) / (y1 - y0)) * H;
    svg += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#e5e5e5\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5:g}</text>\n",
        left, y, left + W, left - 6, y + 4, o.log_y ? std::pow(10.0, t) : t);
  }
  svg += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n"
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n"
      "<text transform=\"translate(18 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
      left, top, W, H, left + W / 2, o.height - 12, escape(o.x_label), top + H / 2,
      escape(o.y_label) + (o.log_y ? " (log scale)" : ""));
  // The lines, then the legend.
  for (std::size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    std::string points;
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i])) points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i]));
    svg += fmt::format(
        "<polyline fill=\"none\" stroke=\"{0}\" stroke-width=\"1.5\" points=\"{1}\"/>\n"
        "<line x1=\"{2}\" y1=\"{3}\" x2=\"{4}\" y2=\"{3}\" stroke=\"{0}\" stroke-width=\"3\"/>"
        "<text x=\"{5}\" y=\"{6}\">{7}</text>\n",
        s.color, points, left + W - 150, top + 16 + 18 * double(k), left + W - 128, left + W - 122,
        top + 20 + 18 * double(k), escape(s.label));
  }
  return svg + "</svg>\n";
}

std::string weights_png(const ag::Tensor& W, const ag::Shape& sample_shape, int max_tiles) {
  const bool rgb = sample_shape.size() == 3 && sample_shape[0] == 3;
  if (!(sample_shape.size() == 2 || rgb))
    throw std::invalid_argument(
        "weights_png: sample shape must be [rows, cols] or [3, rows, cols]");
  const int64_t rows = sample_shape[sample_shape.size() - 2], cols = sample_shape.back();
  const int64_t channels = rgb ? 3 : 1;
  const std::vector<double> w = W.to_vector();
  const int64_t D = W.size(0), H = W.size(1);
  if (D != rows * cols * channels)
    throw std::invalid_argument(fmt::format("weights_png: W has {} rows, sample shape {} needs {}",
                                            D, ag::shape_str(sample_shape),
                                            rows * cols * channels));
  const int64_t tiles = std::min<int64_t>(H, max_tiles);
  const int64_t grid = static_cast<int64_t>(std::ceil(std::sqrt(double(tiles))));
  const int64_t zoom = rows * grid <= 800 ? 2 : 1;  // two pixels per weight unless huge
  const int64_t tile_w = cols * zoom, tile_h = rows * zoom, gap = 2;
  const int64_t width = grid * (tile_w + gap) + gap, height = grid * (tile_h + gap) + gap;
  std::vector<unsigned char> image(static_cast<std::size_t>(width * height * channels), 255);
  for (int64_t t = 0; t < tiles; ++t) {
    double lo = std::numeric_limits<double>::max(), hi = std::numeric_limits<double>::lowest();
    for (int64_t d = 0; d < D; ++d)
      lo = std::min(lo, w[d * H + t]), hi = std::max(hi, w[d * H + t]);
    const double range = hi > lo ? hi - lo : 1.0;
    const int64_t ox = gap + (t % grid) * (tile_w + gap), oy = gap + (t / grid) * (tile_h + gap);
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t y = 0; y < tile_h; ++y)
        for (int64_t x = 0; x < tile_w; ++x) {
          const double v = w[((c * rows + y / zoom) * cols + x / zoom) * H + t];
          image[static_cast<std::size_t>(((oy + y) * width + ox + x) * channels + c)] =
              static_cast<unsigned char>(std::lround(255.0 * (v - lo) / range));
        }
  }
  std::string png;
  stbi_write_png_to_func(
      [](void* context, void* data, int size) {
        static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                                   std::size_t(size));
      },
      &png, int(width), int(height), int(channels), image.data(), int(width * channels));
  if (png.empty()) throw std::runtime_error("weights_png: PNG encoding failed");
  return png;
}

}  // namespace report
