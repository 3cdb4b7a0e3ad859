//! The plain exposition for a client that does not accept gzip, inflated
//! from the render's gzip a chunk at a time as the client reads it.
//!
//! The render keeps only the gzip (what Prometheus asks for): at 100k series
//! the plain text would be 6-7 MB held beside a 1 MB gzip between renders.
//! [`Inflate`] holds the shared gzip bytes and a decoder (about 40 KB), and
//! makes one chunk of at most [`CHUNK`] bytes each time hyper asks for the
//! next frame, so a slow or stalled reader holds no more than that.

use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use flate2::read::GzDecoder;
use hyper::body::{Body, Frame, SizeHint};

/// The most plain text made per frame.
pub const CHUNK: usize = 64 * 1024;

/// A response body of `len` bytes inflated from `gzip`.
pub struct Inflate {
    decoder: GzDecoder<bytes::buf::Reader<Bytes>>,
    left: usize,
}

impl Inflate {
    /// The body of the `len` plain bytes that `gzip` holds.
    pub fn new(gzip: Bytes, len: usize) -> Self {
        Inflate {
            decoder: GzDecoder::new(gzip.reader()),
            left: len,
        }
    }

    /// The next chunk: `CHUNK` bytes or what is left, whichever is less.
    fn next_chunk(&mut self) -> std::io::Result<Bytes> {
        let mut buf = vec![0; CHUNK.min(self.left)];
        let mut filled = 0;
        while filled < buf.len() {
            match self.decoder.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the rendered gzip ended before its plain length",
                    ))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.left -= filled;
        Ok(Bytes::from(buf))
    }
}

impl Body for Inflate {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let chunk = this.next_chunk();
        if chunk.is_err() {
            // Ends the body: hyper closes the connection short of its length.
            this.left = 0;
        }
        Poll::Ready(Some(chunk.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Write;

    fn gzip(plain: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(plain).unwrap();
        Bytes::from(enc.finish().unwrap())
    }

    #[tokio::test]
    async fn gives_back_the_plain_text_in_chunks_of_at_most_chunk() {
        let plain: Vec<u8> = (0..CHUNK * 3 + 123)
            .map(|i| b"abcdefghij\n"[i % 11])
            .collect();
        let mut body = Inflate::new(gzip(&plain), plain.len());
        assert_eq!(body.size_hint().exact(), Some(plain.len() as u64));
        let mut out = Vec::new();
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(!data.is_empty() && data.len() <= CHUNK, "{}", data.len());
            out.extend_from_slice(&data);
            frames += 1;
        }
        assert_eq!(frames, 4);
        assert_eq!(out, plain);
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn an_empty_text_is_an_empty_body() {
        let mut body = Inflate::new(gzip(b""), 0);
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_gzip_shorter_than_its_length_is_an_error_not_a_short_body() {
        let plain = vec![b'x'; 1000];
        let mut body = Inflate::new(gzip(&plain), 2000);
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_broken_gzip_is_an_error() {
        let mut body = Inflate::new(Bytes::from_static(b"not gzip at all"), 10);
        assert!(body.frame().await.unwrap().is_err());
    }
}
