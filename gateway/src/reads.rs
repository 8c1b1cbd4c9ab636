//! Reads of a history that include every purchase acknowledged before they arrived,
//! whichever instance recorded it, in about one round trip: the gateway asks the
//! `ORDERS` stream's end while orders reads the page from its view as it is
//! (`view_as_is`), and sends the page on when the view already held that end; otherwise
//! it asks again with the end (`stream_end`), and orders waits until its view holds it.
//!
//! Left to orders, the stream's end is asked once the request has reached it, and the
//! page sent once the answer is back: two round trips, one after the other. Asked here,
//! the question still leaves after the HTTP request arrived, which is all the guarantee
//! needs, and travels at the same time as the request to orders. The reads waiting at
//! the same moment share one question ([`StreamTail`]).
//!
//! A whole history the gateway keeps ([`crate::kept`]) is sent again without asking
//! orders while the user's newest event in the stream is the one it was read with
//! ([`Reads::unchanged`]): a direct get of the user's subject, sent after the request
//! arrived, answered by the stream itself (only on a stream of one replica), finds
//! every event acknowledged before it.

use bus_schema::{
    CallError, CallOptions, ErrorCode, ErrorReply, Reason,
    orders::{self, PurchasesRequest},
};
use bytes::Bytes;
use service_kit::stream_tail::{Newest, StreamTail};

/// The gateway's reads of histories, and the `ORDERS` stream's end they ask.
#[derive(Debug, Clone)]
pub struct Reads {
    nats: async_nats::Client,
    end: StreamTail,
}

impl Reads {
    /// Reads on `nats`; the asking task lives as long as a clone of this.
    pub fn new(nats: async_nats::Client) -> Self {
        Self {
            end: StreamTail::new(nats.clone(), orders::STREAM),
            nats,
        }
    }

    /// The reply of `orders.purchases` to `request` (JSON bytes, as orders sent it),
    /// including every event the stream held when this was called; and that stream end,
    /// for the next pages of the same history ([`Self::page_up_to`]).
    pub async fn page(
        &self,
        request: &PurchasesRequest,
        calls: &CallOptions,
    ) -> Result<(Bytes, u64), CallError> {
        let (end, as_is) = tokio::join!(
            self.end.last_sequence(),
            orders::purchases_as_is(&self.nats, request, calls)
        );
        let (reply, view_next) = as_is?;
        let end = end.map_err(|err| {
            CallError::Service(
                ErrorReply::new(
                    ErrorCode::Unavailable,
                    format!("cannot confirm the history is current ({err}); try again"),
                )
                .because(Reason::ViewBehind),
            )
        })?;
        // The view held every event below `view_next` before the page was read.
        if view_next.is_some_and(|next| next > end) {
            return Ok((reply, end));
        }
        Ok((self.page_up_to(request, end, calls).await?, end))
    }

    /// The reply of `orders.purchases` to `request`, including every event up to
    /// `end`, without asking the stream.
    pub async fn page_up_to(
        &self,
        request: &PurchasesRequest,
        end: u64,
        calls: &CallOptions,
    ) -> Result<Bytes, CallError> {
        let request = PurchasesRequest {
            view_as_is: false,
            stream_end: Some(end),
            ..request.clone()
        };
        orders::purchases_bytes(&self.nats, &request, calls).await
    }

    /// [`Self::page_up_to`], decoded.
    pub async fn decoded_page_up_to(
        &self,
        request: &PurchasesRequest,
        end: u64,
        calls: &CallOptions,
    ) -> Result<orders::PurchasesReply, CallError> {
        let reply = self.page_up_to(request, end, calls).await?;
        serde_json::from_slice(&reply).map_err(|err| CallError::BadReply {
            service: orders::SERVICE,
            reason: err.to_string(),
        })
    }

    /// `user`'s newest event in the stream now, when direct gets are in use (see
    /// [`StreamTail::newest_of`]).
    pub async fn newest(&self, user: &str) -> Option<Newest> {
        // A name of the shop is one token of a subject; anything else is not asked.
        let plain = !user.is_empty()
            && user
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !plain {
            return None;
        }
        self.end.newest_of(&orders::subject::purchased(user)).await
    }

    /// Whether `user` has no event in the stream after `newest`, the newest one a copy of
    /// their history holds: then the copy holds every purchase acknowledged before this
    /// call. False when it cannot be known this way.
    pub async fn unchanged(&self, user: &str, newest: Option<&Newest>) -> bool {
        match newest {
            Some(known) => self.newest(user).await.as_ref() == Some(known),
            None => false,
        }
    }

    /// The questions asked about the stream's end, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        self.end.metrics()
    }
}
