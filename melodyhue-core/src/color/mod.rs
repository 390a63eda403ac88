//! The fast cover-color extractor: image bytes in, colors out.
