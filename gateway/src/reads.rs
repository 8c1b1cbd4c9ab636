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
//! orders while it is whole ([`Reads::still_whole`]): when the stream's end, asked after
//! the request arrived, is still the one the copy was read at (nothing was appended
//! since: the question is shared by the reads waiting at that moment), or else when the
//! user's newest event, asked next by a direct get of their subject (answered by the
//! stream itself, only on a stream of one replica), is still the copy's.

use bus_schema::{
    CallError, CallOptions, ErrorCode, ErrorReply, Reason,
    orders::{self, PurchasesRequest},
    users::Username,
};
use bytes::Bytes;
use service_kit::stream_tail::{End, Newest, StreamTail};

use crate::kept::Copy;

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
    ) -> Result<(Bytes, End), CallError> {
        let (end, as_is) = tokio::join!(
            self.end.end(),
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
        if view_next.is_some_and(|next| next > end.seq) {
            return Ok((reply, end));
        }
        Ok((self.page_up_to(request, end.seq, calls).await?, end))
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

    /// [`Self::page`], decoded.
    pub async fn decoded_page(
        &self,
        request: &PurchasesRequest,
        calls: &CallOptions,
    ) -> Result<orders::PurchasesReply, CallError> {
        decode(&self.page(request, calls).await?.0)
    }

    /// [`Self::page_up_to`], decoded.
    pub async fn decoded_page_up_to(
        &self,
        request: &PurchasesRequest,
        end: u64,
        calls: &CallOptions,
    ) -> Result<orders::PurchasesReply, CallError> {
        decode(&self.page_up_to(request, end, calls).await?)
    }

    /// `user`'s newest event in the stream now, when direct gets are in use (see
    /// [`StreamTail::newest_of`]).
    pub async fn newest(&self, user: &str) -> Option<Newest> {
        // A name of the shop is one token of a subject; anything else is not asked.
        Username::parse(user)
            .ok()
            .filter(|name| name.as_str() == user)?;
        self.end.newest_of(&orders::subject::purchased(user)).await
    }

    /// When `copy`, `user`'s whole history, holds every purchase acknowledged before
    /// this call: the stream's end now, which the copy holds every event of theirs up to.
    /// `None` when that cannot be known without orders.
    pub async fn still_whole(&self, user: &str, copy: &Copy) -> Option<End> {
        let end = self.end.end().await.ok()?;
        if copy.stream_end.as_ref() == Some(&end) {
            return Some(end);
        }
        // Asked after `end` was answered: a newest event that is still the copy's leaves
        // nothing of the user's up to `end` outside it.
        let newest = copy.newest.as_ref()?;
        (self.newest(user).await.as_ref() == Some(newest)).then_some(end)
    }

    /// The questions asked about the stream's end, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        self.end.metrics()
    }
}

/// A reply of `orders.purchases` (JSON bytes), decoded.
fn decode(reply: &[u8]) -> Result<orders::PurchasesReply, CallError> {
    serde_json::from_slice(reply).map_err(|err| CallError::BadReply {
        service: orders::SERVICE,
        reason: err.to_string(),
    })
}
