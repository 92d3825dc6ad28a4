//! The StoreAPI, the protocol every rthanos component speaks: the wire messages (Thanos's
//! `thanos.Store` and `thanos.info.Info`, Prometheus's remote read) generated at build time from
//! `proto/` with field numbers exactly as upstream, the [`Store`] trait that the sidecar, the
//! store gateway and the querier implement, the gRPC server and client for it, and the
//! streaming k-way merge of sorted series that the querier's proxy is built on.

pub mod client;
mod codec;
pub mod convert;
pub mod external;
pub mod limits;
pub mod merge;
pub mod metadata;
pub mod reorder;
pub mod rules;
pub mod server;
mod store;

pub use client::{ClientOptions, ClientTls, GrpcStore};
pub use limits::SeriesLimits;
pub use merge::{compare_labels, merge_series};
pub use metadata::{MetadataApi, MetadataSupport};
pub use server::StoreServer;
pub use store::{Component, SeriesStream, Store, StoreInfo};
/// Package `thanos`: StoreAPI messages and the `Store` service.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::clone_on_ref_ptr)]
pub mod thanos {
    tonic::include_proto!("thanos");

    /// Package `thanos.info`: the `Info` service newer queriers ask.
    #[allow(missing_docs, unreachable_pub, clippy::all, clippy::clone_on_ref_ptr)]
    pub mod info {
        tonic::include_proto!("thanos.info");
    }
}

/// Package `prometheus`: remote-read messages.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::clone_on_ref_ptr)]
pub mod prometheus {
    tonic::include_proto!("prometheus");
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::prometheus;
    use super::thanos;

    /// Field numbers on the wire: tag byte = field number << 3 | wire type.
    #[test]
    fn series_request_fields_have_thanos_numbers() {
        let req = thanos::SeriesRequest {
            skip_chunks: true,
            without_replica_labels: vec!["replica".into()],
            response_batch_size: 3,
            ..Default::default()
        };
        let bytes = req.encode_to_vec();
        assert_eq!(bytes[..2], [8 << 3, 1], "skip_chunks is field 8");
        assert_eq!(bytes[2], 14 << 3 | 2, "without_replica_labels is field 14");
        assert_eq!(
            bytes[bytes.len() - 3..],
            [0x80, 0x01, 3],
            "response_batch_size is field 16 (two-byte tag)"
        );
        let matcher = thanos::LabelMatcher {
            r#type: thanos::label_matcher::Type::Nre as i32,
            name: "a".into(),
            value: "b".into(),
        };
        assert_eq!(matcher.encode_to_vec(), [8, 3, 18, 1, b'a', 26, 1, b'b']);
    }

    #[test]
    fn chunk_encodings_differ_between_thanos_and_prometheus() {
        assert_eq!(thanos::chunk::Encoding::Xor as i32, 0);
        assert_eq!(prometheus::chunk::Encoding::Xor as i32, 1);
        let resp = thanos::SeriesResponse {
            result: Some(thanos::series_response::Result::Warning("w".into())),
        };
        assert_eq!(resp.encode_to_vec(), [2 << 3 | 2, 1, b'w']);
    }
}
