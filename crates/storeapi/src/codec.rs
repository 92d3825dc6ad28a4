//! The protobuf codec of the generated services: prost's decoder, and an encoder that makes
//! room for the whole message before writing it.
//!
//! Series answers are tens of MB of small messages. Tonic encodes them into one buffer and
//! hands over everything written each time it passes the yield threshold (or the source has
//! nothing ready). With prost writing field by field into a buffer left without capacity,
//! the buffer grew by doubling, copying what it held each time (measured: a quarter of the
//! sidecar's instructions were these copies). Here each message first reserves its
//! `encoded_len`, and a fresh buffer has room for a whole hand-over, so nothing is copied to
//! grow; messages ready together still go out together (one HTTP/2 frame and one write for
//! many small ones).

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::{ProstCodec, ProstDecoder};

/// prost's codec with [`ReservingEncoder`].
#[derive(Debug, Clone)]
pub(crate) struct StoreCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for StoreCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::new())
    }
}

impl<T, U> Codec for StoreCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ReservingEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ReservingEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        self.0.decoder()
    }
}

/// Encodes a message into room reserved for all of it.
#[derive(Debug, Clone)]
pub(crate) struct ReservingEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ReservingEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }

    /// Messages ready together are handed over together, up to 32 KiB: one HTTP/2 DATA frame
    /// and one write for many small Series messages instead of one each. The buffer starts
    /// with room for all of it, and each message reserves its own size before it is written,
    /// so a handed-over buffer is never copied to grow.
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(64 * 1024, 32 * 1024)
    }
}
