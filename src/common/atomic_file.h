// Outputs appear complete or not at all: write under a temporary name in the same
// folder, then rename(2) over the final name, which is atomic on one filesystem.
// If the writer is destroyed without commit() (an exception, a crash), the
// temporary is removed and the final path is left untouched.
#pragma once
#include <string>

namespace sr {

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

  // Renames temp() to final_path(), replacing an existing file or (empty or
  // previous-output) folder there. Throws sr::Error if the rename fails.
  void commit();

 private:
  std::string final_, temp_;
  bool committed_ = false;
};

}  // namespace sr
