//! A QR code of a URL, so that a phone's camera can open what ferry
//! serves: drawn with Unicode half blocks for a terminal, or as SVG for
//! the page.

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

/// `text` as an SVG image (dark on white, with its quiet zone); `None`
/// when it is too long for one.
pub fn svg(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

/// `text` as a QR code in half blocks (dark on light, with its quiet
/// zone); `None` when it is too long for one.
pub fn render(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_becomes_a_square_of_half_blocks() {
        let q = render("http://192.168.1.20:7070/").unwrap();
        let lines: Vec<&str> = q.lines().collect();
        // 25 modules and 4 of quiet zone each side; two rows a line.
        let width = lines[0].chars().count();
        assert_eq!(width, 25 + 8);
        assert_eq!(lines.len(), (25usize + 8).div_ceil(2));
        assert!(q.chars().all(|c| " ▀▄█\n".contains(c)), "{q}");
        assert!(render(&"x".repeat(5000)).is_none());
        let s = svg("http://192.168.1.20:7070/").unwrap();
        assert!(s.contains("<svg") && s.contains("<path") && !s.contains("script"));
        assert!(svg(&"x".repeat(5000)).is_none());
    }
}
