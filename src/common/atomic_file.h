// Outputs appear complete or not at all: write under a temporary name in the same
// folder, then rename(2) over the final name, which is atomic on one filesystem.
// If the writer is destroyed without commit() (an exception, a crash), the
// temporary is removed and the final path is left untouched.
#pragma once
#include <string>

namespace sr {

// Written into every output folder; its presence means "signround wrote this".
inline constexpr const char* kOutputMarker = ".signround-output";

// True when `dir` is a folder signround wrote: it holds kOutputMarker, or (outputs
// of versions before the marker) signround_run.json.
bool is_signround_output(const std::string& dir);

class AtomicPath {
 public:
  // final_path: where the output must end up. The temporary is
  // "<final_path>.tmp-<pid>" (a file or a folder, the caller decides).
  explicit AtomicPath(std::string final_path);
  ~AtomicPath();  // removes the temporary unless committed
  AtomicPath(const AtomicPath&) = delete;
  AtomicPath& operator=(const AtomicPath&) = delete;

  const std::string& temp() const { return temp_; }
  const std::string& final_path() const { return final_; }

  // Renames temp() to final_path(). A folder output gets the marker file
  // kOutputMarker first, so a later run recognises it as signround's own. An
  // existing folder at final_path() is replaced only if it is empty, carries the
  // marker, or was passed to allow_replacing(); a folder output never replaces a
  // regular file. Anything else throws sr::Error naming the path: commit() never
  // removes what signround did not create.
  void commit();

  // The user asked for this path to be replaced (--overwrite): commit() may
  // replace the folder there even without the marker.
  static void allow_replacing(const std::string& path);

 private:
  std::string final_, temp_;
  bool committed_ = false;
};

// Writes `text` to `path` through an AtomicPath. Throws sr::Error "<what> cannot write <temporary>".
void write_file_atomically(const std::string& path, const std::string& text, const std::string& what);

}  // namespace sr
