#include "gateway/api_match.h"

#include <algorithm>

#include "gateway/codec.h"

namespace geysir::gateway {
namespace {

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    size_t end = slash == std::string_view::npos ? path.size() : slash;
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// How specific a template segment is: higher wins.
enum Rank : int { kGreedy = 1, kParam = 2, kLiteral = 3 };

struct Candidate {
  std::vector<int> ranks;
  bool exact_method = false;
};

// -1: a is less specific than b, 0: equal, 1: more specific.
int Compare(const Candidate& a, const Candidate& b) {
  size_t n = std::max(a.ranks.size(), b.ranks.size());
  for (size_t i = 0; i < n; ++i) {
    int ra = i < a.ranks.size() ? a.ranks[i] : 0;
    int rb = i < b.ranks.size() ? b.ranks[i] : 0;
    if (ra != rb) return ra > rb ? 1 : -1;
  }
  if (a.exact_method != b.exact_method) return a.exact_method ? 1 : -1;
  return 0;
}

// Matches `segs` against the template path; fills ranks and (decoded) parameters.
bool MatchTemplate(std::string_view tmpl, const std::vector<std::string_view>& segs, Candidate& c,
                   std::vector<std::pair<std::string, std::string>>& params) {
  std::vector<std::string_view> parts = Segments(tmpl);
  size_t i = 0;
  for (size_t p = 0; p < parts.size(); ++p) {
    std::string_view part = parts[p];
    bool braces = part.size() > 2 && part.front() == '{' && part.back() == '}';
    if (braces && part[part.size() - 2] == '+') {
      if (p + 1 != parts.size() || i >= segs.size()) return false;  // greedy: last, one or more
      std::string rest;
      for (size_t k = i; k < segs.size(); ++k) {
        if (k > i) rest.push_back('/');
        rest.append(PercentDecode(segs[k], false));
      }
      params.emplace_back(std::string(part.substr(1, part.size() - 3)), std::move(rest));
      c.ranks.push_back(kGreedy);
      return true;
    }
    if (i >= segs.size()) return false;
    if (braces) {
      params.emplace_back(std::string(part.substr(1, part.size() - 2)), PercentDecode(segs[i], false));
      c.ranks.push_back(kParam);
    } else {
      if (PercentDecode(segs[i], false) != part) return false;
      c.ranks.push_back(kLiteral);
    }
    ++i;
  }
  return i == segs.size();
}

const proto::ApiStage* FindStage(const proto::ApiGatewayApi& api, std::string_view name) {
  for (const auto& s : api.stages) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string_view MediaTypeOnly(std::string_view ct) {
  size_t semi = ct.find(';');
  if (semi != std::string_view::npos) ct = ct.substr(0, semi);
  while (!ct.empty() && (ct.back() == ' ' || ct.back() == '\t')) ct.remove_suffix(1);
  while (!ct.empty() && (ct.front() == ' ' || ct.front() == '\t')) ct.remove_prefix(1);
  return ct;
}

void MatchRoute(ApiMatch& m, const std::vector<std::string_view>& segs, std::string_view method, bool rest);

}  // namespace

bool MatchesMediaType(const std::vector<std::string>& types, std::string_view content_type) {
  std::string ct = AsciiLower(MediaTypeOnly(content_type));
  for (const std::string& t : types) {
    std::string type = AsciiLower(t);
    if (type == "*/*") return true;
    if (ct.empty()) continue;
    if (type == ct) return true;
    if (type.size() > 2 && type.compare(type.size() - 2, 2, "/*") == 0 &&
        ct.compare(0, type.size() - 1, type, 0, type.size() - 1) == 0) {
      return true;  // "image/*" matches "image/png"
    }
  }
  return false;
}

ApiMatch MatchApi(const proto::ApiGatewayApi& api, std::string_view method, std::string_view raw_path) {
  ApiMatch m;
  std::vector<std::string_view> segs = Segments(raw_path);
  const bool rest = api.kind != "http";

  // The stage.
  size_t skip = 0;
  if (!segs.empty()) {
    std::string first = PercentDecode(segs[0], false);
    if (first != "$default") m.stage = FindStage(api, first);
    if (m.stage) skip = 1;
  }
  if (!m.stage && !rest) m.stage = FindStage(api, "$default");
  if (!m.stage) {
    m.result = ApiMatch::Result::kNoStage;
    return m;
  }
  // The path after the stage, as received.
  if (skip) {
    size_t at = static_cast<size_t>(segs[0].data() - raw_path.data()) + segs[0].size();
    m.path = std::string(raw_path.substr(at));
  } else {
    m.path = std::string(raw_path);
  }
  if (m.path.empty() || m.path.front() != '/') m.path.insert(m.path.begin(), '/');
  segs.erase(segs.begin(), segs.begin() + static_cast<std::ptrdiff_t>(skip));
  MatchRoute(m, segs, method, rest);
  return m;
}

ApiMatch MatchApiStage(const proto::ApiGatewayApi& api, std::string_view stage, std::string_view method,
                       std::string_view path) {
  ApiMatch m;
  m.stage = FindStage(api, stage);
  if (!m.stage) {
    m.result = ApiMatch::Result::kNoStage;
    return m;
  }
  m.path = std::string(path);
  if (m.path.empty() || m.path.front() != '/') m.path.insert(m.path.begin(), '/');
  MatchRoute(m, Segments(path), method, api.kind != "http");
  return m;
}

const proto::CustomDomainRoute* MatchMapping(const std::vector<proto::CustomDomainRoute>& mappings,
                                             std::string_view raw_path, std::string* rest) {
  const std::vector<std::string_view> segs = Segments(raw_path);
  const proto::CustomDomainRoute* best = nullptr;
  size_t best_len = 0;
  for (const auto& m : mappings) {
    const std::vector<std::string_view> key = Segments(m.base_path);
    if (key.size() > segs.size() || (best && key.size() <= best_len)) continue;
    if (!std::equal(key.begin(), key.end(), segs.begin())) continue;
    best = &m;
    best_len = key.size();
  }
  if (!best) return nullptr;
  if (best_len == 0) {
    *rest = std::string(raw_path);
  } else {
    const std::string_view last = segs[best_len - 1];
    *rest = std::string(raw_path.substr(static_cast<size_t>(last.data() - raw_path.data()) + last.size()));
  }
  if (rest->empty() || rest->front() != '/') rest->insert(rest->begin(), '/');
  return best;
}

namespace {

// Picks the route of m.stage for the path segments after the stage; sets result.
void MatchRoute(ApiMatch& m, const std::vector<std::string_view>& segs, std::string_view method, bool rest) {
  const proto::ApiRoute* best = nullptr;
  Candidate best_c;
  const proto::ApiRoute* fallback = nullptr;
  for (const auto& r : m.stage->routes) {
    if (r.path == "$default") {
      fallback = &r;
      continue;
    }
    bool exact = r.method == method;
    if (!exact && r.method != "ANY") continue;
    Candidate c;
    c.exact_method = exact;
    std::vector<std::pair<std::string, std::string>> params;
    if (!MatchTemplate(r.path, segs, c, params)) continue;
    if (!best || Compare(c, best_c) > 0) {
      best = &r;
      best_c = std::move(c);
      m.path_parameters = std::move(params);
    }
  }
  if (!best && fallback && !rest) {
    best = fallback;
    m.path_parameters.clear();
  }
  if (!best) {
    m.result = ApiMatch::Result::kNoRoute;
    return;
  }
  m.route = best;
  m.result = ApiMatch::Result::kMatched;
}

}  // namespace

}  // namespace geysir::gateway
