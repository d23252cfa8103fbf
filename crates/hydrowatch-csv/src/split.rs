//! One line of a readings file split into its fields: comma separated, RFC 4180 quoting within
//! a line (a field may not span lines, so line numbers stay exact).

/// The fields of one line: their bytes back to back, and where each ends.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Fields {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
    pub(crate) fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }
}

/// Splits one line (without its line break) into `fields`: comma separated, a field may be
/// quoted with `"` and a quote inside it doubled (RFC 4180). Fails on an unterminated quote or
/// text after a closing quote.
pub(crate) fn split_line(line: &[u8], fields: &mut Fields) -> Result<(), &'static str> {
    fields.buf.clear();
    fields.ends.clear();
    let mut i = 0;
    loop {
        if line.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match line.get(i) {
                    None => return Err("a quoted field is not closed (fields may not span lines)"),
                    Some(b'"') if line.get(i + 1) == Some(&b'"') => {
                        fields.buf.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        fields.buf.push(c);
                        i += 1;
                    }
                }
            }
            if !matches!(line.get(i), None | Some(b',')) {
                return Err("text after a closing quote");
            }
        } else {
            let end = line[i..]
                .iter()
                .position(|&c| c == b',')
                .map_or(line.len(), |p| i + p);
            fields.buf.extend_from_slice(&line[i..end]);
            i = end;
        }
        fields.ends.push(fields.buf.len());
        if i >= line.len() {
            return Ok(());
        }
        i += 1; // the comma
    }
}
