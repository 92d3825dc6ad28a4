//! The protobuf codec of the generated services: prost's decoder, and an encoder that makes
//! room for the whole message before writing it.
//!
//! Series answers are tens of MB of small messages. Tonic encodes them into one buffer and
//! hands over everything written each time it passes the yield threshold (or the source has
//! nothing ready), which leaves the buffer without capacity; prost then writes field by field
//! and the buffer grows by doubling, copying what it holds each time (measured: a quarter of
//! the sidecar's instructions were these copies). Here each message is handed over alone, in
//! a buffer reserved for its `encoded_len`: one allocation, no copy.

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

    /// Yield after every message: each is then written into a buffer of its own exact
    /// size and handed over without ever being copied (HTTP/2 cuts frames of 16 KiB anyway).
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(8 * 1024, 0)
    }
}
