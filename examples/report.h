// What a training run leaves behind for a person to open: plots as SVG, the first-layer weights
// as a PNG grid, and every file written atomically (temp file, then rename).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "autograd/autograd.h"

namespace report {

/// Writes `contents` to `path` through a temporary file in the same directory and a rename, so
/// `path` is either the old file or the complete new one (nn::write_file_atomically). Throws
/// std::system_error naming the path and the system's reason.
void write_file(const std::filesystem::path& path, const std::string& contents);

/// Throws std::runtime_error naming `dir` and the system's reason unless a file can be created in
/// it (by creating and removing one), so that a run can fail before it trains, not after.
void check_writable(const std::filesystem::path& dir);

struct Series {
  std::string label;
  std::vector<double> x, y;
  std::string color;  // any SVG colour, e.g. "#1f77b4"
};

struct PlotOptions {
  std::string title, x_label, y_label;
  bool log_y = false;
  int width = 720, height = 440;
};

/// A line plot with axes, ticks, axis labels, a title and a legend, as an SVG document.
std::string line_plot_svg(const std::vector<Series>& series, const PlotOptions& options);

/// The columns of W: [D, H] as a grid of image tiles, each min-max scaled to 0..255 (as CS231n's
/// show_net_weights). sample_shape is {rows, cols} (grey) or {3, rows, cols} (RGB, channel-major).
/// Returns PNG bytes.
std::string weights_png(const ag::Tensor& W, const ag::Shape& sample_shape, int max_tiles = 1024);

}  // namespace report
