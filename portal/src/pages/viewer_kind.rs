//! Which in-page viewer suits an attachment (by its name, then its declared
//! type), and what an image really is by its first bytes: a file is only ever
//! served to the browser as an image when its bytes say so, whatever its name.

/// The viewers the portal has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// JPEG, PNG, GIF or BMP: the browser draws it.
    Image,
    /// TIFF: decoded in the page (UTIF.js) onto a canvas.
    Tiff,
    /// A 3D model (binary or ASCII STL), drawn with three.js.
    Stl,
    /// A DICOM image or series (daikon), with window/level.
    Dicom,
}

impl Kind {
    /// The word the viewer's page and buttons use.
    pub fn label(self) -> &'static str {
        match self {
            Self::Image | Self::Tiff => "image",
            Self::Stl => "3D model",
            Self::Dicom => "DICOM image",
        }
    }

    /// The name the page's script and styles know the viewer by.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Tiff => "tiff",
            Self::Stl => "stl",
            Self::Dicom => "dicom",
        }
    }

    /// Whether the attachment list can show a small picture of it.
    pub fn has_thumbnail(self) -> bool {
        self == Self::Image
    }
}

/// The viewer for an attachment named `name` declared as `content_type`.
pub(super) fn kind_of(name: &str, content_type: &str) -> Option<Kind> {
    let ext = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let by_name = match ext.as_str() {
        "jpg" | "jpeg" | "jpe" | "png" | "gif" | "bmp" => Some(Kind::Image),
        "tif" | "tiff" => Some(Kind::Tiff),
        "stl" => Some(Kind::Stl),
        "dcm" | "dicom" => Some(Kind::Dicom),
        _ => None,
    };
    by_name.or_else(|| {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "image/jpeg" | "image/png" | "image/gif" | "image/bmp" | "image/x-ms-bmp" => Some(Kind::Image),
            "image/tiff" => Some(Kind::Tiff),
            "model/stl" | "model/x.stl-binary" | "model/x.stl-ascii" | "application/sla" => Some(Kind::Stl),
            "application/dicom" => Some(Kind::Dicom),
            _ => None,
        }
    })
}

/// The image type a browser may be handed, by the file's first bytes; `None`
/// for anything else (an HTML or SVG file named `.png` stays bytes).
pub(super) fn sniff_image(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\xFF\xD8\xFF") {
        Some("image/jpeg")
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if head.len() >= 14 && head.starts_with(b"BM") {
        Some("image/bmp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, kind_of, sniff_image};

    #[test]
    fn viewers_by_name_then_declared_type() {
        assert_eq!(kind_of("X-RAY.JPG", "application/octet-stream"), Some(Kind::Image));
        assert_eq!(kind_of("pano.tiff", ""), Some(Kind::Tiff));
        assert_eq!(kind_of("crown.STL", ""), Some(Kind::Stl));
        assert_eq!(kind_of("ct.dcm", ""), Some(Kind::Dicom));
        assert_eq!(kind_of("scan", "application/dicom"), Some(Kind::Dicom));
        assert_eq!(kind_of("report.pdf", "application/pdf"), None);
        assert_eq!(kind_of("page.html", "text/html"), None);
        assert_eq!(kind_of("drawing.svg", "image/svg+xml"), None);
    }

    #[test]
    fn only_real_image_bytes_are_images() {
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\n rest"), Some("image/png"));
        assert_eq!(sniff_image(b"\xFF\xD8\xFF\xE0"), Some("image/jpeg"));
        assert_eq!(sniff_image(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff_image(b"BM\0\0\0\0\0\0\0\0\0\0\0\0"), Some("image/bmp"));
        assert_eq!(sniff_image(b"<html><script>alert(1)</script>"), None);
        assert_eq!(sniff_image(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), None);
        assert_eq!(sniff_image(b"BM"), None);
    }
}
