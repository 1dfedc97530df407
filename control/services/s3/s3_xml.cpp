// The expat-backed XML tree of s3_xml.h.
#include "control/services/s3/s3_xml.h"

#include <expat.h>

namespace geysir::control::s3 {
namespace {

constexpr size_t kMaxDepth = 32;
constexpr size_t kMaxElements = 100'000;

struct ParserFree {
  void operator()(XML_ParserStruct* p) const { XML_ParserFree(p); }
};

struct Builder {
  XML_Parser parser = nullptr;
  std::vector<XmlNode> stack;  // open elements; stack[0] is a dummy parent of the root
  size_t elements = 0;
  std::string error;

  void Stop(std::string why) {
    if (error.empty()) error = std::move(why);
    XML_StopParser(parser, XML_FALSE);
  }
};

std::string LocalName(const char* name) {
  std::string_view n(name);
  // With namespace processing on, expat gives "uri|local".
  if (size_t bar = n.rfind('|'); bar != std::string_view::npos) n = n.substr(bar + 1);
  return std::string(n);
}

void XMLCALL OnStart(void* data, const XML_Char* name, const XML_Char** /*attrs*/) {
  auto* b = static_cast<Builder*>(data);
  if (b->stack.size() > kMaxDepth) return b->Stop("the XML is nested too deeply");
  if (++b->elements > kMaxElements) return b->Stop("the XML has too many elements");
  XmlNode node;
  node.name = LocalName(name);
  b->stack.push_back(std::move(node));
}

void XMLCALL OnEnd(void* data, const XML_Char* /*name*/) {
  auto* b = static_cast<Builder*>(data);
  XmlNode node = std::move(b->stack.back());
  b->stack.pop_back();
  b->stack.back().children.push_back(std::move(node));
}

void XMLCALL OnText(void* data, const XML_Char* s, int len) {
  auto* b = static_cast<Builder*>(data);
  if (b->stack.size() > 1) b->stack.back().text.append(s, static_cast<size_t>(len));
}

void XMLCALL OnDoctype(void* data, const XML_Char*, const XML_Char*, const XML_Char*, int) {
  static_cast<Builder*>(data)->Stop("DTDs are not accepted");
}

void XMLCALL OnEntityDecl(void* data, const XML_Char*, int, const XML_Char*, int, const XML_Char*, const XML_Char*,
                          const XML_Char*, const XML_Char*) {
  static_cast<Builder*>(data)->Stop("entity declarations are not accepted");
}

}  // namespace

const XmlNode* XmlNode::Child(std::string_view n) const {
  for (const auto& c : children) {
    if (c.name == n) return &c;
  }
  return nullptr;
}

std::optional<std::string> XmlNode::ChildText(std::string_view n) const {
  if (const XmlNode* c = Child(n)) return c->text;
  return std::nullopt;
}

std::vector<const XmlNode*> XmlNode::Children(std::string_view n) const {
  std::vector<const XmlNode*> out;
  for (const auto& c : children) {
    if (c.name == n) out.push_back(&c);
  }
  return out;
}

std::optional<XmlNode> ParseXml(std::string_view xml, std::string* error) {
  std::unique_ptr<XML_ParserStruct, ParserFree> parser(XML_ParserCreateNS("UTF-8", '|'));
  if (!parser) {
    if (error) *error = "out of memory";
    return std::nullopt;
  }
  Builder b;
  b.parser = parser.get();
  b.stack.emplace_back();
  XML_SetUserData(parser.get(), &b);
  XML_SetElementHandler(parser.get(), OnStart, OnEnd);
  XML_SetCharacterDataHandler(parser.get(), OnText);
  XML_SetStartDoctypeDeclHandler(parser.get(), OnDoctype);
  XML_SetEntityDeclHandler(parser.get(), OnEntityDecl);
  size_t pos = 0;
  bool ok = true;
  do {
    size_t n = std::min<size_t>(xml.size() - pos, 1 << 20);
    bool last = pos + n == xml.size();
    if (XML_Parse(parser.get(), xml.data() + pos, static_cast<int>(n), last ? XML_TRUE : XML_FALSE) ==
        XML_STATUS_ERROR) {
      ok = false;
      break;
    }
    pos += n;
  } while (pos < xml.size());
  if (!ok || b.stack.size() != 1 || b.stack[0].children.size() != 1) {
    if (error) {
      *error = !b.error.empty() ? b.error
               : !ok ? std::string(XML_ErrorString(XML_GetErrorCode(parser.get())))
                     : std::string("no root element");
    }
    return std::nullopt;
  }
  return std::move(b.stack[0].children[0]);
}

}  // namespace geysir::control::s3
