// encode tokenizer.json texts.json out.json: our ids of each text (Tokenizer::encode).
#include <fstream>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  sr::Tokenizer tok(sr::read_hf_tokenizer_json(argv[1]));
  std::ifstream in(argv[2]);
  const nlohmann::json texts = nlohmann::json::parse(in);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : texts) out.push_back(tok.encode(t.get<std::string>()));
  std::ofstream(argv[3]) << out.dump();
  return 0;
}
