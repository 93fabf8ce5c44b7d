#include <catch2/catch.hpp>
#include <zlib.h>

#include "dissectors/dicom/dataset.h"
#include "dissectors/dicom/phi_tags.h"
#include "dissectors/dicom/test/builder.h"

using namespace medmon::dicom;
using namespace dtest;

namespace {
bool has_phi(const DatasetSummary& s, const char* keyword) {
  auto tags = phi_tags();
  for (size_t i = 0; i < tags.size(); ++i)
    if (std::string_view(tags[i].keyword) == keyword) return s.phi_mask.test(i);
  FAIL("unknown keyword " << keyword);
  return false;
}

void check_ct(const DatasetSummary& s) {
  CHECK(s.pixel_data);
  CHECK_FALSE(s.truncated);
  CHECK(s.modality == "CT");
  CHECK(s.manufacturer == "ACME Medical");
  CHECK(s.model == "Scanotron 3000");
  CHECK(s.software == "VA10");
  CHECK(s.station == "CTROOM1");
  CHECK(s.serial == "SN-12345");
  CHECK(s.patient_name == "Doe^Jane");
  CHECK(s.patient_id == "OTHER42");  // first occurrence: inside Other Patient IDs Sequence
  CHECK(s.accession == "ACC0001");
  CHECK(s.sop_class == kCtImage);
  CHECK(s.charset == "ISO_IR 100");
  CHECK(has_phi(s, "PatientName"));
  CHECK(has_phi(s, "PatientID"));
  CHECK(has_phi(s, "PatientBirthDate"));
  CHECK(has_phi(s, "AccessionNumber"));
  CHECK(has_phi(s, "OtherPatientIDsSequence"));
  CHECK(has_phi(s, "StudyDate"));
  CHECK(has_phi(s, "StationName"));
  CHECK(has_phi(s, "SOPInstanceUID"));  // linkable: tier 2
  CHECK_FALSE(has_phi(s, "StudyInstanceUID"));
  CHECK_FALSE(has_phi(s, "PatientAddress"));
}

DatasetSummary walk(Syntax syn, const Bytes& ds, size_t chunk, bool* done_early = nullptr) {
  DatasetWalker w;
  w.start(syn);
  bool done = false;
  size_t fed = 0;
  for (size_t o = 0; o < ds.size() && !done; o += chunk) {
    size_t n = std::min(chunk, ds.size() - o);
    done = w.feed(std::span<const uint8_t>(ds).subspan(o, n));
    fed = o + n;
  }
  if (done_early) *done_early = fed < ds.size();
  w.finish();
  CHECK(w.error() == nullptr);
  return w.summary();
}
}  // namespace

TEST_CASE("walker: every transfer syntax, every chunk size", "[dicom][dataset]") {
  struct C { Ts ts; Syntax syn; } cases[] = {
      {Ts::implicit_le, Syntax::implicit_le},
      {Ts::explicit_le, Syntax::explicit_le},
      {Ts::explicit_be, Syntax::explicit_be},
      {Ts::implicit_le, Syntax::detect},
      {Ts::explicit_le, Syntax::detect},
      {Ts::explicit_be, Syntax::detect},
  };
  for (auto& c : cases) {
    Bytes ds = ct_dataset(c.ts, 100000);
    for (size_t chunk : {size_t(1), size_t(7), size_t(100), size_t(4096), ds.size()}) {
      INFO("syntax " << int(c.syn) << " chunk " << chunk);
      bool early = false;
      DatasetSummary s = walk(c.syn, ds, chunk, &early);
      check_ct(s);
      if (chunk < 50000) CHECK(early);  // stopped at pixel data, the rest was never needed
    }
  }
}

TEST_CASE("walker: deflated explicit VR LE", "[dicom][dataset]") {
  Bytes plain = ct_dataset(Ts::explicit_le, 5000);
  Bytes out(compressBound(plain.size()) + 64);
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  zs.next_in = plain.data();
  zs.avail_in = uInt(plain.size());
  zs.next_out = out.data();
  zs.avail_out = uInt(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  for (size_t chunk : {size_t(3), size_t(64), out.size()}) check_ct(walk(Syntax::deflated, out, chunk));
  // Without the negotiated syntax (a capture joined mid-association) the bytes are found to
  // inflate to elements.
  CHECK(detect_syntax(out, DetectEnd::open) == Syntax::deflated);
  for (size_t chunk : {size_t(1), size_t(3), size_t(64), size_t(300), out.size()}) {
    INFO("chunk " << chunk);
    check_ct(walk(Syntax::detect, out, chunk));
  }
  // A short deflated query identifier, decided when it ends.
  Ds q(Ts::explicit_le);
  q.str(0x0008, 0x0052, "CS", "STUDY").str(0x0010, 0x0010, "PN", "Roe^Max");
  Bytes z(256);
  z_stream qs{};
  REQUIRE(deflateInit2(&qs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  qs.next_in = q.b.data();
  qs.avail_in = uInt(q.b.size());
  qs.next_out = z.data();
  qs.avail_out = uInt(z.size());
  REQUIRE(deflate(&qs, Z_FINISH) == Z_STREAM_END);
  z.resize(qs.total_out);
  deflateEnd(&qs);
  DatasetSummary s = walk(Syntax::detect, z, 5);
  CHECK(has_phi(s, "PatientName"));
  CHECK_FALSE(s.truncated);
}

TEST_CASE("transfer syntaxes whose dataset is deflated", "[dicom][dataset]") {
  CHECK(syntax_of("1.2.840.10008.1.2.1.99") == Syntax::deflated);
  CHECK(syntax_of("1.2.840.10008.1.2.4.95") == Syntax::deflated);   // JPIP Referenced Deflate
  CHECK(syntax_of("1.2.840.10008.1.2.4.205") == Syntax::deflated);  // JPIP HTJ2K Referenced Deflate
  CHECK(syntax_of("1.2.840.10008.1.2.4.94") == Syntax::explicit_le);  // JPIP Referenced
  CHECK(syntax_of("1.2.840.10008.1.2.4.204") == Syntax::explicit_le);
}

TEST_CASE("walker: nested undefined-length sequences and defined-length items", "[dicom][dataset]") {
  Ds d(Ts::explicit_le);
  d.str(0x0008, 0x0060, "CS", "MR");
  d.seq_begin(0x0040, 0x0275).item_begin();
  d.seq_begin(0x0040, 0x0008).item_begin().str(0x0008, 0x0100, "SH", "X1").item_end().seq_end();
  d.str(0x0040, 0x0009, "SH", "SPS1");
  d.item_end().seq_end();
  // A defined-length sequence with a defined-length item holding the patient's address.
  Ds inner(Ts::explicit_le);
  inner.str(0x0010, 0x1040, "LO", "1 Main Street");
  Bytes item;
  le16(item, 0xFFFE); le16(item, 0xE000); le32(item, uint32_t(inner.b.size()));
  append(item, inner.b);
  d.raw(0x0040, 0xA730, "SQ", item);
  d.str(0x0010, 0x0010, "PN", "Roe^Richard");
  Bytes ds = d.b;
  for (size_t chunk : {size_t(1), size_t(5), ds.size()}) {
    DatasetSummary s = walk(Syntax::explicit_le, ds, chunk);
    CHECK(s.modality == "MR");
    CHECK(s.patient_name == "Roe^Richard");
    CHECK(has_phi(s, "ScheduledProcedureStepID"));
    CHECK(has_phi(s, "PatientAddress"));
    CHECK(has_phi(s, "ContentSequence"));
    CHECK(s.max_depth == 2);
    CHECK_FALSE(s.pixel_data);
  }
}

TEST_CASE("walker: query keys without values are not PHI", "[dicom][dataset]") {
  Ds d(Ts::implicit_le);
  d.str(0x0010, 0x0010, "PN", "");
  d.str(0x0010, 0x0020, "LO", "*");
  d.str(0x0010, 0x0030, "DA", "19800101");
  DatasetSummary s = walk(Syntax::implicit_le, d.b, d.b.size());
  CHECK_FALSE(has_phi(s, "PatientName"));
  CHECK_FALSE(has_phi(s, "PatientID"));
  CHECK(has_phi(s, "PatientBirthDate"));
}

TEST_CASE("walker: acquisition and content times are tier 2 PHI", "[dicom][dataset]") {
  Ds d(Ts::explicit_le);
  d.str(0x0008, 0x0032, "TM", "101500");
  d.str(0x0008, 0x0033, "TM", "101512.5");
  DatasetSummary s = walk(Syntax::explicit_le, d.b, d.b.size());
  CHECK(has_phi(s, "AcquisitionTime"));
  CHECK(has_phi(s, "ContentTime"));
  for (const PhiTag& t : phi_tags())
    if (t.tag == 0x00080032 || t.tag == 0x00080033) CHECK(t.tier == 2);
}

TEST_CASE("walker: empty sequences and items are not PHI", "[dicom][dataset]") {
  // C-FIND sequence keys as fo-dicom sends them: undefined length, no item or one empty item.
  for (Ts ts : {Ts::implicit_le, Ts::explicit_le}) {
    Ds d(ts);
    d.str(0x0008, 0x0052, "CS", "STUDY");
    d.seq_begin(0x0010, 0x1002).seq_end();
    d.seq_begin(0x0040, 0xA730).item_begin().item_end().seq_end();
    d.seq_begin(0x0010, 0x1100).item_begin().str(0x0010, 0x0020, "LO", "").item_end().seq_end();
    Syntax syn = ts == Ts::implicit_le ? Syntax::implicit_le : Syntax::explicit_le;
    for (size_t chunk : {size_t(1), d.b.size()}) {
      DatasetSummary s = walk(syn, d.b, chunk);
      CHECK(s.phi_mask.none());
    }
    // An item with a value makes the sequence count.
    d.seq_begin(0x0010, 0x1002).item_begin().str(0x0010, 0x0020, "LO", "OTHER42").item_end().seq_end();
    DatasetSummary s = walk(syn, d.b, d.b.size());
    CHECK(has_phi(s, "OtherPatientIDsSequence"));
    CHECK_FALSE(has_phi(s, "ContentSequence"));
  }
}

TEST_CASE("walker: UN of undefined length is read as implicit VR LE", "[dicom][dataset]") {
  // PS3.5 6.2.2: a private sequence the sender did not know, sent as UN in explicit VR LE.
  Ds d(Ts::explicit_le);
  d.str(0x0008, 0x0060, "CS", "CT");
  d.str(0x0009, 0x0010, "LO", "ACME 1.0");
  d.header(0x0009, 0x1010, "UN", 0xFFFFFFFF);
  Ds un(Ts::implicit_le);
  un.item_begin().str(0x0009, 0x1011, "LO", "ABCDEFGH").item_end().seq_end();
  append(d.b, un.b);
  d.str(0x0010, 0x0010, "PN", "Doe^John");
  d.str(0x0010, 0x0020, "LO", "PID12345");
  for (size_t chunk : {size_t(1), size_t(9), d.b.size()}) {
    DatasetSummary s = walk(Syntax::explicit_le, d.b, chunk);
    CHECK(s.patient_name == "Doe^John");
    CHECK(has_phi(s, "PatientName"));
    CHECK(has_phi(s, "PatientID"));
  }
}

TEST_CASE("walker: a large sequence in tiny fragments costs linear time", "[dicom][dataset]") {
  // One undefined-length top-level sequence of 60000 bytes, fed byte by byte: it is
  // incomplete until its last byte and parsed again from its start at each walk.
  const size_t n = 7500;
  Ds d(Ts::implicit_le);
  d.seq_begin(0x0011, 0x0010).item_begin();
  for (size_t i = 0; i < n; ++i) d.raw(0x0011, uint16_t(0x1000 + i % 0x100), "UN", Bytes{});
  d.item_end().seq_end();
  d.str(0x0010, 0x0010, "PN", "Doe^John");
  DatasetSummary s = walk(Syntax::implicit_le, d.b, 1);
  CHECK(s.patient_name == "Doe^John");
  // `elements` counts every element read, again at each re-walk: a few times n, not n * n.
  CHECK(s.elements < 4 * n);
}

TEST_CASE("walker: large values are skipped, not buffered", "[dicom][dataset]") {
  Ds d(Ts::explicit_le);
  d.raw(0x0009, 0x1010, "OB", Bytes(3 * 1024 * 1024, 1));  // private blob larger than any cap
  d.str(0x0010, 0x0010, "PN", "Poe^Edgar");
  d.pixel(10);
  DatasetWalker w;
  w.start(Syntax::explicit_le);
  for (size_t o = 0; o < d.b.size(); o += 1000) w.feed(std::span<const uint8_t>(d.b).subspan(o, std::min<size_t>(1000, d.b.size() - o)));
  w.finish();
  // Bytes stepped over unread are not part of the walk budget: the patient name after the
  // value is read.
  CHECK_FALSE(w.summary().truncated);
  CHECK(w.summary().truncated_by == nullptr);
  CHECK(w.summary().patient_name == "Poe^Edgar");
  CHECK(w.summary().pixel_data);
  CHECK(w.error() == nullptr);
}

TEST_CASE("walker: the walk budget still bounds the bytes read", "[dicom][dataset]") {
  Ds d(Ts::explicit_le);
  for (int i = 0; i < 40000; ++i) d.str(0x0009, 0x1010, "LO", "ABCDEFGHIJKLMNOPQRSTUVWXYZ");  // 1.4 MB of small values
  d.str(0x0010, 0x0010, "PN", "Poe^Edgar");
  DatasetWalker w;
  w.start(Syntax::explicit_le);
  for (size_t o = 0; o < d.b.size(); o += 1000) w.feed(std::span<const uint8_t>(d.b).subspan(o, std::min<size_t>(1000, d.b.size() - o)));
  w.finish();
  CHECK(w.summary().truncated);
  CHECK(std::string(w.summary().truncated_by) == "walk_budget");
  CHECK(w.summary().patient_name.empty());
}

TEST_CASE("walker: a large undefined-length sequence is stepped over, what follows is read", "[dicom][dataset]") {
  for (Ts ts : {Ts::explicit_le, Ts::implicit_le, Ts::explicit_be}) {
    Ds d(ts);
    d.str(0x0008, 0x0060, "CS", "CT");
    d.seq_begin(0x0008, 0x1140);
    for (int i = 0; i < 2000; ++i) {
      d.item_begin().str(0x0008, 0x1150, "UI", kCtImage).str(0x0008, 0x1155, "UI", "1.2.3.4.5." + std::to_string(i));
      if (i % 100 == 0) {  // nested: an undefined-length sequence, a defined-length item
        d.seq_begin(0x0008, 0x9215).item_begin().str(0x0008, 0x0100, "SH", "X1").item_end();
        d.tag(0xFFFE, 0xE000); d.len32(10); d.str(0x0008, 0x0100, "SH", "Y2");
        d.seq_end();
      }
      d.item_end();
    }
    d.seq_end();
    d.str(0x0010, 0x0010, "PN", "Poe^Edgar").str(0x0010, 0x0020, "LO", "PID0001");
    d.pixel(10);
    REQUIRE(d.b.size() > 2 * DatasetWalker::kBufferCap);
    for (size_t chunk : {size_t(1), size_t(997), size_t(16000), d.b.size()}) {
      INFO("syntax " << int(ts) << " chunk " << chunk);
      DatasetWalker w;
      w.start(ts == Ts::explicit_le ? Syntax::explicit_le : ts == Ts::implicit_le ? Syntax::implicit_le : Syntax::explicit_be);
      for (size_t o = 0; o < d.b.size(); o += chunk) w.feed(std::span<const uint8_t>(d.b).subspan(o, std::min(chunk, d.b.size() - o)));
      w.finish();
      CHECK(w.error() == nullptr);
      CHECK_FALSE(w.summary().truncated);
      CHECK(w.summary().patient_name == "Poe^Edgar");
      CHECK(w.summary().patient_id == "PID0001");
      CHECK(w.summary().pixel_data);
    }
  }
}

TEST_CASE("walker: a large undefined-length sequence that never closes is truncated", "[dicom][dataset]") {
  Ds d(Ts::explicit_le);
  d.seq_begin(0x0008, 0x1140);
  for (int i = 0; i < 2000; ++i) d.item_begin().str(0x0008, 0x1155, "UI", "1.2.3.4.5." + std::to_string(i)).item_end();
  DatasetWalker w;
  w.start(Syntax::explicit_le);
  w.feed(d.b);
  w.finish();
  CHECK(std::string(w.error()) == "dataset_truncated");
}

TEST_CASE("walker: malformed and truncated input", "[dicom][dataset]") {
  SECTION("bad VR") {
    Bytes ds = {0x10, 0x00, 0x10, 0x00, 0x01, 0x02, 0x04, 0x00, 'a', 'b', 'c', 'd'};
    DatasetWalker w;
    w.start(Syntax::explicit_le);
    CHECK(w.feed(ds));
    w.finish();
    CHECK(std::string(w.error()) == "dataset_bad_element");
  }
  SECTION("item inside a sequence that overruns it") {
    Ds d(Ts::explicit_le);
    Bytes item;
    le16(item, 0xFFFE); le16(item, 0xE000); le32(item, 1000);
    d.raw(0x0010, 0x1002, "SQ", item);
    DatasetWalker w;
    w.start(Syntax::explicit_le);
    w.feed(d.b);
    w.finish();
    CHECK(std::string(w.error()) == "dataset_bad_sequence");
  }
  SECTION("dataset ends inside an element") {
    Ds d(Ts::implicit_le);
    d.str(0x0010, 0x0010, "PN", "Doe^John");
    Bytes cut(d.b.begin(), d.b.end() - 3);
    DatasetWalker w;
    w.start(Syntax::implicit_le);
    w.feed(cut);
    w.finish();
    CHECK(std::string(w.error()) == "dataset_truncated");
  }
  SECTION("deeply nested sequences stop at the depth cap") {
    Ds d(Ts::explicit_le);
    for (int i = 0; i < 40; ++i) d.seq_begin(0x0040, 0x0275).item_begin();
    for (int i = 0; i < 40; ++i) d.item_end().seq_end();
    DatasetWalker w;
    w.start(Syntax::explicit_le);
    w.feed(d.b);
    w.finish();
    CHECK(std::string(w.error()) == "dataset_bad_sequence");
  }
  SECTION("random bytes never crash") {
    uint32_t x = 12345;
    for (int round = 0; round < 2000; ++round) {
      Bytes b(1 + round % 300);
      for (auto& c : b) { x = x * 1103515245 + 12345; c = uint8_t(x >> 16); }
      for (Syntax syn : {Syntax::implicit_le, Syntax::explicit_le, Syntax::explicit_be, Syntax::deflated, Syntax::detect}) {
        DatasetWalker w;
        w.start(syn);
        w.feed(b);
        w.finish();
      }
    }
    SUCCEED();
  }
}

TEST_CASE("text decoding per Specific Character Set", "[dicom][dataset]") {
  std::string out;
  decode_text("M\xfcller^Hans", "ISO_IR 100", out);
  CHECK(out == "M\xc3\xbcller^Hans");
  decode_text("M\xc3\xbcller^Hans", "ISO_IR 192", out);
  CHECK(out == "M\xc3\xbcller^Hans");
  decode_text("\xc4\xe5\xec\xe9", "ISO_IR 144", out);  // Cyrillic in ISO-8859-5
  CHECK(out == "\xd0\xa4\xd1\x85\xd1\x8c\xd1\x89");
  decode_text("plain", "", out);
  CHECK(out == "plain");
}

TEST_CASE("text decoding follows ISO 2022 escape sequences (PS3.5 Annexes H to K)", "[dicom][dataset]") {
  // Made-up names; each must decode to the UTF-8 text alone, without the escape sequences.
  std::string out;
  // Korean, Annex I: value 1 empty, KS X 1001 designated to G1 in each component group.
  decode_text("KIM^\x1b$)C\xbc\xf8\xc0\xda", "\\ISO 2022 IR 149", out);
  CHECK(out == "KIM^\xec\x88\x9c\xec\x9e\x90");  // KIM^순자
  // Japanese, Annex H: JIS X 0208 in G0, back to ASCII before each delimiter.
  decode_text("Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", "ISO 2022 IR 6\\ISO 2022 IR 87", out);
  CHECK(out == "Yamada^Tarou=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e");  // 山田^太郎
  // Half-width katakana (ISO 2022 IR 13 in G1) and JIS X 0208 behind ESC ( J.
  decode_text("\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J", "ISO 2022 IR 13\\ISO 2022 IR 87", out);
  CHECK(out == "\xef\xbe\x94\xef\xbe\x8f\xef\xbe\x80\xef\xbe\x9e^\xef\xbe\x80\xef\xbe\x9b\xef\xbd\xb3=\xe5\xb1\xb1\xe7\x94\xb0");
  // JIS X 0212 (ISO 2022 IR 159).
  decode_text("\x1b$(D0!\x1b(B", "ISO 2022 IR 6\\ISO 2022 IR 87\\ISO 2022 IR 159", out);
  CHECK(out == "\xe4\xb8\x82");  // 丂
  // Chinese, Annex K: GB 2312 in G1.
  decode_text("Zhang^XiaoDong=\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1\xb6\xab", "\\ISO 2022 IR 58", out);
  CHECK(out == "Zhang^XiaoDong=\xe5\xbc\xa0^\xe5\xb0\x8f\xe4\xb8\x9c");
  // Several single-byte sets in one value, switched in G1.
  decode_text("\x1b-L\xb8\xb2\xb0\xbd\xbe\xb2^\x1b-AM\xfcller", "ISO 2022 IR 100\\ISO 2022 IR 144", out);
  CHECK(out == "\xd0\x98\xd0\x92\xd0\x90\xd0\x9d\xd0\x9e\xd0\x92^M\xc3\xbcller");
  // Value 1 designates G1 from the start; ISO_IR 13 alone is the 8-bit JIS X 0201.
  decode_text("\xc4\xe5\xec\xe9", "ISO 2022 IR 144", out);
  CHECK(out == "\xd0\xa4\xd1\x85\xd1\x8c\xd1\x89");
  decode_text("\xd4\xcf\xc0\xde", "ISO_IR 13", out);
  CHECK(out == "\xef\xbe\x94\xef\xbe\x8f\xef\xbe\x80\xef\xbe\x9e");
  // Upper-half bytes sent without an escape: the first later value with an upper half reads them.
  decode_text("\xbc\xf8\xc0\xda", "\\ISO 2022 IR 149", out);
  CHECK(out == "\xec\x88\x9c\xec\x9e\x90");
}

TEST_CASE("text that does not decode is kept as sent", "[dicom][dataset]") {
  std::string out;
  const std::pair<std::string, std::string> bad[] = {
      {"KIM^\x1b$)C\xbc", "\\ISO 2022 IR 149"},                // cut inside a character
      {"\x1b$B;", "ISO 2022 IR 6\\ISO 2022 IR 87"},              // odd byte of a 94x94 set
      {"A\x1b%G\xc3\xa9", "ISO 2022 IR 6\\ISO 2022 IR 100"},    // escape not in PS3.3
      {"A\x1b", "ISO 2022 IR 6\\ISO 2022 IR 87"},                // ESC at the end
      {"\xe9t\xe9", "ISO 2022 IR 6\\ISO 2022 IR 87"},            // upper half with no set for it
      {"\xa1\xff", "ISO_IR 127"},                                // bytes ISO 8859-6 leaves undefined
      {"\xe9", "ISO_IR 999"},                                    // unknown term
  };
  for (auto& [raw, cs] : bad) {
    INFO(cs);
    decode_text(raw, cs, out);
    CHECK(out == raw);
  }
}

TEST_CASE("walker: encapsulated pixel data inside a sequence item is stepped over", "[dicom][dataset]") {
  // An Icon Image Sequence whose item holds JPEG-encapsulated Pixel Data (PS3.5 A.4): the
  // fragments are items of compressed bytes, not elements.
  for (Ts ts : {Ts::explicit_le, Ts::explicit_be}) {
    Ds d(ts);
    d.str(0x0008, 0x0060, "CS", "US");
    d.str(0x0010, 0x0010, "PN", "Roe^Rita");
    d.seq_begin(0x0088, 0x0200).item_begin();
    d.str(0x0028, 0x0010, "US", "");
    d.header(0x7FE0, 0x0010, "OB", 0xFFFFFFFF);
    d.tag(0xFFFE, 0xE000); d.len32(0);  // the basic offset table
    Bytes jpeg = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01, 0xFF, 0xD9};
    d.tag(0xFFFE, 0xE000); d.len32(uint32_t(jpeg.size())); append(d.b, jpeg);
    d.seq_end();    // the fragments' delimiter
    d.item_end().seq_end();
    d.str(0x2050, 0x0020, "CS", "IDENTITY");
    d.pixel(100);
    Syntax syn = ts == Ts::explicit_le ? Syntax::explicit_le : Syntax::explicit_be;
    for (size_t chunk : {size_t(1), size_t(9), d.b.size()}) {
      INFO("syntax " << int(ts) << " chunk " << chunk);
      DatasetSummary s = walk(syn, d.b, chunk);  // checks that no error was raised
      CHECK_FALSE(s.truncated);
      CHECK(s.patient_name == "Roe^Rita");
      CHECK(s.pixel_data);  // the top-level Pixel Data after the sequence was reached
    }
  }
}

TEST_CASE("walker: an SR content item's Person Name is tier 2 PHI", "[dicom][dataset]") {
  // PS3.15 Table E.1-1 (reference section 3.2): (0040,A123) Person Name, tier 2.
  Ds d(Ts::explicit_le);
  d.seq_begin(0x0040, 0xA730).item_begin();
  d.str(0x0040, 0xA040, "CS", "PNAME");
  d.str(0x0040, 0xA123, "PN", "Observer^Olga");
  d.item_end().seq_end();
  DatasetSummary s = walk(Syntax::explicit_le, d.b, d.b.size());
  CHECK(has_phi(s, "ContentSequence"));
  CHECK(has_phi(s, "PersonName"));
  for (const PhiTag& t : phi_tags())
    if (t.tag == 0x0040A123) CHECK(t.tier == 2);
}

TEST_CASE("walker: a UN value of defined length holding a sequence is read", "[dicom][dataset]") {
  // Other Patient IDs Sequence sent as UN by a peer that did not know the tag: its content is
  // implicit VR LE items (PS3.5 6.2.2). A UN value that only opens like an item stays a value.
  Bytes inner;
  ile(inner, 0x0010, 0x0020, "UNSEQ1");
  Bytes items;
  le16(items, 0xFFFE); le16(items, 0xE000); le32(items, uint32_t(inner.size())); append(items, inner);
  Bytes fake = {0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0x00, 0x00, 'A', 'B'};  // item length past the value
  for (Ts ts : {Ts::explicit_le, Ts::explicit_be}) {
    Ds d(ts);
    d.str(0x0008, 0x0060, "CS", "CT");
    d.raw(0x0009, 0x1010, "UN", fake);
    d.raw(0x0010, 0x1002, "UN", items);
    d.str(0x0010, 0x1040, "LO", "1 Made-up Street");
    Syntax syn = ts == Ts::explicit_le ? Syntax::explicit_le : Syntax::explicit_be;
    for (size_t chunk : {size_t(1), size_t(5), d.b.size()}) {
      INFO("syntax " << int(ts) << " chunk " << chunk);
      DatasetSummary s = walk(syn, d.b, chunk);
      CHECK(s.patient_id == "UNSEQ1");
      CHECK(has_phi(s, "PatientID"));
      CHECK(has_phi(s, "OtherPatientIDsSequence"));
      CHECK(has_phi(s, "PatientAddress"));
    }
  }
}

TEST_CASE("walker: an unknown syntax is told from the first element headers, byte order too", "[dicom][dataset]") {
  // A Basic Film Session in explicit VR BE: (2000,0010) IS "1" reads as (1000,1000) in little
  // endian, a tag as plausible; only the lengths tell the byte order.
  for (Ts ts : {Ts::explicit_le, Ts::explicit_be}) {
    Ds d(ts);
    d.str(0x2000, 0x0010, "IS", "1");
    d.str(0x2000, 0x0020, "CS", "HIGH");
    d.str(0x2000, 0x0030, "CS", "PAPER");
    Syntax want = ts == Ts::explicit_be ? Syntax::explicit_be : Syntax::explicit_le;
    CHECK(detect_syntax(d.b, DetectEnd::complete) == want);
    CHECK(detect_syntax(std::span<const uint8_t>(d.b).first(10), DetectEnd::open) == Syntax::detect);
    // A query identifier of one element, as short as datasets get.
    Ds one(ts);
    one.str(0x0010, 0x0010, "PN", "Roe^Max");
    CHECK(detect_syntax(one.b, DetectEnd::complete) == want);
    // Longer datasets are decided from their first 256 bytes, whatever the fragmentation.
    Bytes ct = ct_dataset(ts, 1000);
    CHECK(detect_syntax(ct, DetectEnd::open) == want);
    CHECK(detect_syntax(std::span<const uint8_t>(ct).first(255), DetectEnd::open) == Syntax::detect);
    CHECK(detect_syntax(std::span<const uint8_t>(ct).first(100), DetectEnd::cut) == want);
  }
  Bytes implicit = ct_dataset(Ts::implicit_le, 10);
  CHECK(detect_syntax(implicit, DetectEnd::open) == Syntax::implicit_le);
}

TEST_CASE("walker: Study, Series and SOP Instance UIDs are tier 2 PHI; empty query keys are not", "[dicom][dataset]") {
  Ds d(Ts::implicit_le);
  d.str(0x0008, 0x0018, "UI", "");  // a C-FIND return key
  d.str(0x0020, 0x000D, "UI", "1.2.826.0.1.999.1");
  d.str(0x0020, 0x000E, "UI", "1.2.826.0.1.999.1.1");
  DatasetSummary s = walk(Syntax::implicit_le, d.b, d.b.size());
  CHECK_FALSE(has_phi(s, "SOPInstanceUID"));
  CHECK(has_phi(s, "StudyInstanceUID"));
  CHECK(has_phi(s, "SeriesInstanceUID"));
  for (auto& t : phi_tags())
    if (std::string_view(t.keyword).find("InstanceUID") != std::string_view::npos) CHECK(t.tier == 2);
}

namespace {
Syntax syntax_for(Ts ts) {
  return ts == Ts::explicit_le ? Syntax::explicit_le : ts == Ts::implicit_le ? Syntax::implicit_le : Syntax::explicit_be;
}
// Items of a large sequence, one of them (the 1500th) holding a patient's name and other IDs,
// each item of defined or undefined length.
Bytes large_sequence_items(Ts ts, bool defined_items) {
  Ds items(ts);
  for (int i = 0; i < 2000; ++i) {
    Ds in(ts);
    in.str(0x0008, 0x1150, "UI", kCtImage).str(0x0008, 0x1155, "UI", "1.2.3.4.5." + std::to_string(i));
    if (i == 1500) in.str(0x0010, 0x0010, "PN", "Roe^Richard").str(0x0010, 0x1000, "LO", "OPID9");
    if (defined_items) {
      items.tag(0xFFFE, 0xE000); items.len32(uint32_t(in.b.size())); append(items.b, in.b);
    } else {
      items.item_begin(); append(items.b, in.b); items.item_end();
    }
  }
  return items.b;
}
}  // namespace

TEST_CASE("walker: PHI inside a sequence too large to hold is read as it streams past", "[dicom][dataset]") {
  for (Ts ts : {Ts::explicit_le, Ts::implicit_le, Ts::explicit_be}) {
    for (bool defined : {false, true}) {
      Bytes items = large_sequence_items(ts, defined);
      Ds d(ts);
      d.str(0x0008, 0x0060, "CS", "CT");
      if (defined) {
        d.header(0x0008, 0x1140, "SQ", uint32_t(items.size()));
        append(d.b, items);
      } else {
        d.seq_begin(0x0008, 0x1140);
        append(d.b, items);
        d.seq_end();
      }
      d.str(0x0010, 0x0020, "LO", "PID0002");
      d.pixel(10);
      REQUIRE(items.size() > DatasetWalker::kBufferCap);
      for (size_t chunk : {size_t(1), size_t(997), size_t(16000), d.b.size()}) {
        INFO("syntax " << int(ts) << " defined " << defined << " chunk " << chunk);
        DatasetSummary s = walk(syntax_for(ts), d.b, chunk);
        CHECK_FALSE(s.truncated);
        CHECK(s.patient_name == "Roe^Richard");  // inside the sequence
        CHECK(has_phi(s, "PatientName"));
        CHECK(has_phi(s, "OtherPatientIDs"));
        CHECK(s.patient_id == "PID0002");  // after it, at the top level
        CHECK(has_phi(s, "PatientID"));
        CHECK(s.pixel_data);
      }
    }
  }
}

TEST_CASE("walker: a large Other Patient IDs Sequence counts, and the IDs in it are read", "[dicom][dataset]") {
  Ds d(Ts::explicit_le);
  d.seq_begin(0x0010, 0x1002);
  for (int i = 0; i < 3000; ++i)
    d.item_begin().str(0x0010, 0x0020, "LO", "OTHER" + std::to_string(i)).str(0x0010, 0x0021, "LO", "HOSPITAL X").item_end();
  d.seq_end();
  d.str(0x0010, 0x1040, "LO", "1 Made-up Street");
  REQUIRE(d.b.size() > DatasetWalker::kBufferCap);
  DatasetSummary s = walk(Syntax::explicit_le, d.b, 1460);
  CHECK_FALSE(s.truncated);
  CHECK(has_phi(s, "OtherPatientIDsSequence"));
  CHECK(has_phi(s, "PatientID"));
  CHECK(has_phi(s, "IssuerOfPatientID"));
  CHECK(s.patient_id == "OTHER0");
  CHECK(has_phi(s, "PatientAddress"));
  // A large sequence of empty items holds no value: no PHI.
  Ds e(Ts::explicit_le);
  e.seq_begin(0x0010, 0x1002);
  for (int i = 0; i < 3000; ++i) e.item_begin().str(0x0010, 0x0020, "LO", "").str(0x0009, 0x0010, "LO", "").item_end();
  e.seq_end();
  REQUIRE(e.b.size() > DatasetWalker::kBufferCap);
  DatasetSummary es = walk(Syntax::explicit_le, e.b, 1460);
  CHECK_FALSE(es.truncated);
  CHECK_FALSE(has_phi(es, "OtherPatientIDsSequence"));
}

TEST_CASE("walker: a defined-length sequence whose header takes it past the buffer is read, what follows too", "[dicom][dataset]") {
  // Value length at most kBufferCap, but header and value together over it: the buffer can
  // never hold it whole.
  for (uint32_t len : {uint32_t(DatasetWalker::kBufferCap - 8), uint32_t(DatasetWalker::kBufferCap - 2), uint32_t(DatasetWalker::kBufferCap)}) {
    Ds in(Ts::explicit_le);
    in.str(0x0040, 0xA123, "PN", "Observer^Olga");
    in.raw(0x0009, 0x1010, "OB", Bytes(len - 8 - in.b.size() - 12, 0x11));
    Ds d(Ts::explicit_le);
    d.header(0x0040, 0x0275, "SQ", len);
    d.tag(0xFFFE, 0xE000); d.len32(uint32_t(in.b.size())); append(d.b, in.b);
    REQUIRE(d.b.size() == 12 + len);
    d.str(0x0040, 0xA730, "SQ", "");  // an empty sequence: no value
    d.str(0x0040, 0xA731, "LO", "tail");
    Ds tail(Ts::explicit_le);
    tail.str(0x0010, 0x0010, "PN", "Roe^Rita");
    // PatientName after it, at the top level (tags need not ascend for the walker).
    append(d.b, tail.b);
    for (size_t chunk : {size_t(1000), d.b.size()}) {
      INFO("len " << len << " chunk " << chunk);
      DatasetSummary s = walk(Syntax::explicit_le, d.b, chunk);
      CHECK_FALSE(s.truncated);
      CHECK(s.patient_name == "Roe^Rita");
      CHECK(has_phi(s, "PersonName"));
    }
  }
}

TEST_CASE("walker: a defined-length sequence over the walk budget is stepped over by its length, what follows is read", "[dicom][dataset]") {
  // 1.5 MiB of small elements in one sequence of defined length: more than the walk reads of
  // it, but its length says where it ends.
  Ds items(Ts::explicit_le);
  for (int i = 0; i < 50000; ++i) {
    Ds in(Ts::explicit_le);
    in.str(0x0008, 0x1155, "UI", "1.2.3.4.5." + std::to_string(i));
    if (i == 10) in.str(0x0010, 0x0010, "PN", "Roe^Richard");
    items.tag(0xFFFE, 0xE000); items.len32(uint32_t(in.b.size())); append(items.b, in.b);
  }
  REQUIRE(items.b.size() > 3 * DatasetWalker::kHeaderBudget / 2);
  for (bool defined : {true, false}) {
    Ds d(Ts::explicit_le);
    d.str(0x0008, 0x0060, "CS", "CT");
    if (defined) {
      d.header(0x0008, 0x1140, "SQ", uint32_t(items.b.size()));
      append(d.b, items.b);
    } else {
      d.seq_begin(0x0008, 0x1140);
      append(d.b, items.b);
      d.seq_end();
    }
    d.str(0x0010, 0x0020, "LO", "PID0003");
    for (size_t chunk : {size_t(1460), size_t(65536), d.b.size()}) {
      INFO("defined " << defined << " chunk " << chunk);
      DatasetWalker w;
      w.start(Syntax::explicit_le);
      for (size_t o = 0; o < d.b.size(); o += chunk) w.feed(std::span<const uint8_t>(d.b).subspan(o, std::min(chunk, d.b.size() - o)));
      w.finish();
      const DatasetSummary& s = w.summary();
      CHECK(s.patient_name == "Roe^Richard");  // read before the budget ran out
      if (defined) {
        CHECK(w.error() == nullptr);
        CHECK_FALSE(s.truncated);
        CHECK(s.patient_id == "PID0003");
      } else {  // its end is only found by reading it: the walk stops
        CHECK(s.truncated);
        CHECK(std::string(s.truncated_by) == "walk_budget");
      }
    }
  }
}

TEST_CASE("walker: the walk budget runs out at the same element however the stream was split", "[dicom][dataset]") {
  // Elements that take exactly the whole budget: the patient name after them is never read,
  // whether the dataset came whole or byte by byte.
  auto run = [](const Bytes& b, size_t chunk) {
    DatasetWalker w;
    w.start(Syntax::explicit_le);
    for (size_t o = 0; o < b.size(); o += chunk) w.feed(std::span<const uint8_t>(b).subspan(o, std::min(chunk, b.size() - o)));
    w.finish();
    return std::make_pair(w.summary(), w.error());
  };
  for (int after : {0, 60, 5000}) {  // elements after the patient name: the end is near or far
    Ds d(Ts::explicit_le);
    d.str(0x0010, 0x0020, "LO", "PID0042");
    for (int i = 0; i < 30840; ++i) d.str(0x0009, 0x1010, "LO", "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    REQUIRE(d.b.size() == DatasetWalker::kHeaderBudget);
    d.str(0x0010, 0x0010, "PN", "Roe^Rupert");
    for (int i = 0; i < after; ++i) d.str(0x0009, 0x1010, "LO", "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    for (size_t chunk : {size_t(1), size_t(7), size_t(1460), d.b.size()}) {
      INFO("after " << after << " chunk " << chunk);
      auto [s, err] = run(d.b, chunk);
      CHECK(err == nullptr);
      CHECK(s.truncated);
      CHECK(std::string(s.truncated_by ? s.truncated_by : "-") == "walk_budget");
      CHECK(s.patient_id == "PID0042");
      CHECK(s.patient_name.empty());
      CHECK_FALSE(has_phi(s, "PatientName"));
    }
  }
}
