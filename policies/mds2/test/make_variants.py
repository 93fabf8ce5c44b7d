#!/usr/bin/python3
"""Writes CSV, TSV, Markdown and PDF copies of an MDS2 XLSX workbook, the way vendors ship them.

Only the standard library: the XLSX is read as zip + XML, the PDF is written by hand (one text line
per sheet row, Courier, cells at fixed x positions so text extraction keeps the columns apart).
Usage: make_variants.py FORM.xlsx OUTDIR
"""
import csv, datetime, os, re, sys, zipfile
import xml.etree.ElementTree as ET

NS = '{http://schemas.openxmlformats.org/spreadsheetml/2006/main}'


def read_rows(path):
    z = zipfile.ZipFile(path)
    shared = []
    if 'xl/sharedStrings.xml' in z.namelist():
        for si in ET.fromstring(z.read('xl/sharedStrings.xml')).iter(NS + 'si'):
            shared.append(''.join(t.text or '' for t in si.iter(NS + 't')))
    sheet = ET.fromstring(z.read('xl/worksheets/sheet1.xml'))
    rows = []
    for row in sheet.iter(NS + 'row'):
        cells = [''] * 7
        for c in row.iter(NS + 'c'):
            m = re.match(r'([A-Z]+)', c.get('r'))
            col = m.group(1)
            if len(col) != 1 or col > 'G':
                continue
            v = c.find(NS + 'v')
            if v is None:
                continue
            cells[ord(col) - 65] = shared[int(v.text)] if c.get('t') == 's' else v.text
        if cells[0].strip() == 'DOC-7' and re.fullmatch(r'\d+', cells[2]):
            # A date cell (an Excel serial day number) is exported as the date the sheet shows.
            cells[2] = (datetime.date(1899, 12, 30) + datetime.timedelta(days=int(cells[2]))).isoformat()
        if any(x.strip() for x in cells):
            rows.append(cells)
    return rows


def keyed(cells):
    return re.match(r'^(DOC|[A-Z]{4})-\d+(\.\d+)*$', cells[0].strip()) or re.match(r'^Note \d+$', cells[0].strip())


def write_csv(rows, path, delim):
    with open(path, 'w', newline='', encoding='utf-8') as f:
        w = csv.writer(f, delimiter=delim)
        for r in rows:
            w.writerow(r)


def write_vendor_tsv(rows, path):
    # Pasted answers: keyed lines only, no header, notes wrapped in HTML.
    with open(path, 'w', encoding='utf-8') as f:
        for r in rows:
            if not keyed(r):
                continue
            cells = [' '.join(x.split()) for x in r]
            if cells[0].startswith('Note '):
                cells[1] = '<p>' + cells[1].replace('&', '&amp;') + '</p>'
            f.write('\t'.join(cells).rstrip('\t') + '\n')


def write_markdown(rows, path):
    with open(path, 'w', encoding='utf-8') as f:
        f.write('# Manufacturer Disclosure Statement for Medical Device Security (MDS2)\n\n')
        f.write('| Question ID | Question | Answer | See note | IEC TR 80001-2-2:2012 | NIST SP 800-53 Rev. 4 | ISO 27002:2013 |\n')
        f.write('|---|---|---|---|---|---|---|\n')
        for r in rows:
            if not keyed(r) or r[0].startswith('Note '):
                continue
            cells = [x.strip().replace('|', '\\|').replace('\n', '<br>') for x in r]
            if cells[2] and cells[2] not in ('Yes', 'No', 'N/A'):
                cells[2] = '<span>' + cells[2] + '</span>'
            f.write('| ' + ' | '.join(cells) + ' |\n')
        f.write('\n## Notes\n\n')
        for r in rows:
            if r[0].startswith('Note '):
                f.write('- **' + r[0].strip() + '**: <p>' + ' '.join(r[1].split()) + '</p>\n')


def write_flat_text(rows, path):
    """Pasted text with one space between the id, the question, the answer and the note column."""
    with open(path, 'w', encoding='utf-8') as f:
        for r in rows:
            if not keyed(r):
                continue
            cells = [' '.join(x.split()) for x in r[:4]]
            f.write(' '.join(c for c in cells if c) + '\n')


def wrap(text, width):
    """Greedy word wrap, as a PDF's layout breaks a cell's text."""
    lines, cur = [], ''
    for w in text.split():
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = (cur + ' ' + w) if cur else w
    return lines + [cur] if cur else lines or ['']


def write_layout_text(rows, path, width, align):
    """PDF text in physical layout: the id at column 0, the question wrapped at `width` characters
    in its column, the answer and the note column to its right on the question's first line (a
    spreadsheet's top alignment) or its last (bottom alignment)."""
    qcol, acol = 12, 12 + width + 4
    ncol = acol + 24
    with open(path, 'w', encoding='utf-8') as f:
        for r in rows:
            if not keyed(r):
                continue
            cells = [' '.join(x.split()) for x in r]
            if cells[0].startswith('Note '):
                f.write(cells[0].ljust(qcol) + cells[1] + '\n')
                continue
            q = wrap(cells[1], width)
            at = 0 if align == 'top' else len(q) - 1
            for i, part in enumerate(q):
                line = (cells[0] if i == 0 else '').ljust(qcol) + part
                if i == at and (cells[2] or cells[3]):
                    line = line.ljust(acol) + cells[2]
                    if cells[3]:
                        line = line.ljust(max(ncol, len(line) + 4)) + cells[3]
                f.write(line.rstrip() + '\n')


def pdf_escape(s):
    b = s.encode('cp1252', 'replace')
    out = bytearray()
    for ch in b:
        if ch in b'()\\':
            out += b'\\' + bytes([ch])
        elif ch < 32:
            out += b' '
        else:
            out.append(ch)
    return bytes(out)


def write_pdf(rows, path):
    xs = [20, 90, 1500, 1700, 1860, 2040, 2200]
    size, lead, per_page, width, height = 6, 9, 80, 2600, 800
    lines = [[' '.join(c.split()) for c in r] for r in rows]
    pages = [lines[i:i + per_page] for i in range(0, len(lines), per_page)]
    objs = []
    font_id = 3
    kids = []
    for n, page in enumerate(pages):
        content = bytearray(b'BT /F1 %d Tf\n' % size)
        y = height - 30
        for cells in page:
            for x, c in zip(xs, cells):
                if c:
                    content += b'1 0 0 1 %d %d Tm (' % (x, y) + pdf_escape(c) + b') Tj\n'
            y -= lead
        content += b'ET\n'
        objs.append((None, content))
        kids.append(len(objs))
    # object numbering: 1 catalog, 2 pages, 3 font, then (page, content) pairs
    body = []
    page_ids = []
    next_id = 4
    for _, content in objs:
        page_ids.append(next_id)
        body.append((next_id, b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>' % (width, height, next_id + 1)))
        body.append((next_id + 1, b'<< /Length %d >>\nstream\n' % len(content) + bytes(content) + b'endstream'))
        next_id += 2
    head = [(1, b'<< /Type /Catalog /Pages 2 0 R >>'),
            (2, b'<< /Type /Pages /Kids [' + b' '.join(b'%d 0 R' % i for i in page_ids) + b'] /Count %d >>' % len(page_ids)),
            (font_id, b'<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>')]
    allobjs = head + body
    out = bytearray(b'%PDF-1.4\n%\xe2\xe3\xcf\xd3\n')
    offsets = {}
    for i, data in allobjs:
        offsets[i] = len(out)
        out += b'%d 0 obj\n' % i + data + b'\nendobj\n'
    xref = len(out)
    out += b'xref\n0 %d\n0000000000 65535 f \n' % (len(allobjs) + 1)
    for i in range(1, len(allobjs) + 1):
        out += b'%010d 00000 n \n' % offsets[i]
    out += b'trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n' % (len(allobjs) + 1, xref)
    with open(path, 'wb') as f:
        f.write(out)


def write_slow_layout_pdf(path, lines=3200):
    """A one-page PDF whose text takes poppler's physical layout tens of seconds (the time grows with
    the square of the glyphs drawn at one place): `lines` times 4000 'A ' at the same position, in one
    deflated content stream of ~30 KB. The import must give up on it in bounded time."""
    import zlib
    line = b'BT /F1 9 Tf 1 0 0 1 10 10 Tm (' + b'A ' * 4000 + b') Tj ET\n'
    co = zlib.compressobj(9)
    comp = b''.join(co.compress(line) for _ in range(lines)) + co.flush()
    objs = [b'<< /Type /Catalog /Pages 2 0 R >>', b'<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
            b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 600 800] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>',
            b'<< /Length %d /Filter /FlateDecode >>\nstream\n' % len(comp) + comp + b'\nendstream',
            b'<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>']
    out = b'%PDF-1.4\n'
    offs = []
    for i, o in enumerate(objs):
        offs.append(len(out))
        out += b'%d 0 obj\n' % (i + 1) + o + b'\nendobj\n'
    xref = len(out)
    out += b'xref\n0 %d\n0000000000 65535 f \n' % (len(objs) + 1) + b''.join(b'%010d 00000 n \n' % o for o in offs)
    out += b'trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n' % (len(objs) + 1, xref)
    with open(path, 'wb') as f:
        f.write(out)


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    rows = read_rows(src)
    write_csv(rows, os.path.join(out, 'form.csv'), ',')
    write_vendor_tsv(rows, os.path.join(out, 'form.tsv'))
    write_markdown(rows, os.path.join(out, 'form.md'))
    write_pdf(rows, os.path.join(out, 'form.pdf'))
    write_flat_text(rows, os.path.join(out, 'flat.txt'))
    # PDF text without its layout: one space apart, wrapped at 80 columns.
    with open(os.path.join(out, 'flat.txt'), encoding='utf-8') as f, \
            open(os.path.join(out, 'flat-wrapped.txt'), 'w', encoding='utf-8') as w:
        for line in f:
            w.write('\n'.join(wrap(line, 80)) + '\n')
    for width in (40, 48, 56, 64):
        for align in ('top', 'bottom'):
            write_layout_text(rows, os.path.join(out, f'layout-{align}-{width}.txt'), width, align)
    write_slow_layout_pdf(os.path.join(out, 'slow-layout.pdf'))


if __name__ == '__main__':
    main()
