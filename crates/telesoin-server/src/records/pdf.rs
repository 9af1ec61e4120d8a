//! PDF documents (krilla, DejaVu Sans embedded so French text renders everywhere): the invoice of
//! a hors-nomenclature session and the compte rendu.

use krilla::Document;
use krilla::geom::Point;
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};

/// One line of a document.
#[derive(Debug, Clone)]
pub enum Line {
    Title(String),
    Heading(String),
    Text(String),
    Blank,
}

const WIDTH: f32 = 595.0; // A4, points
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 56.0;

/// Wraps text at about `width` characters on word boundaries.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push(line);
    }
    out
}

/// Lays out the lines on as many A4 pages as needed.
pub fn render(lines: &[Line]) -> anyhow::Result<Vec<u8>> {
    let regular =
        Font::new(dejavu::sans::regular().into(), 0).ok_or_else(|| anyhow::anyhow!("font"))?;
    let bold = Font::new(dejavu::sans::bold().into(), 0).ok_or_else(|| anyhow::anyhow!("font"))?;
    let mut placed: Vec<(Font, f32, String, f32)> = Vec::new(); // font, size, text, advance
    for l in lines {
        match l {
            Line::Title(t) => placed.push((bold.clone(), 18.0, t.clone(), 30.0)),
            Line::Heading(t) => placed.push((bold.clone(), 12.0, t.clone(), 20.0)),
            Line::Text(t) => {
                for w in wrap(t, 88) {
                    placed.push((regular.clone(), 10.0, w, 14.0));
                }
            }
            Line::Blank => placed.push((regular.clone(), 10.0, String::new(), 10.0)),
        }
    }
    let mut document = Document::new();
    let settings =
        || PageSettings::from_wh(WIDTH, HEIGHT).ok_or_else(|| anyhow::anyhow!("page size"));
    let mut i = 0;
    while i < placed.len() || i == 0 {
        let mut page = document.start_page_with(settings()?);
        let mut surface = page.surface();
        let mut y = MARGIN;
        while i < placed.len() {
            let (font, size, text, advance) = &placed[i];
            if y + advance > HEIGHT - MARGIN {
                break;
            }
            y += advance;
            if !text.is_empty() {
                surface.draw_text(
                    Point::from_xy(MARGIN, y),
                    font.clone(),
                    *size,
                    text,
                    false,
                    TextDirection::Auto,
                );
            }
            i += 1;
        }
        surface.finish();
        page.finish();
        if placed.is_empty() {
            break;
        }
    }
    document.finish().map_err(|e| anyhow::anyhow!("pdf: {e:?}"))
}
