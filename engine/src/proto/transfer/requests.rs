//! The transfer's next request, written without I/O: the head for its
//! current method, headers, proxy and `Expect`; the same body again after
//! a 417 or a redirect that keeps it; a resumable session's next piece.

use uploadtask_http1::request::{RequestHead, Scheme, Target};
use uploadtask_http1::Limits;
use uploadtask_multipart::Body;

use super::Transfer;
use crate::error::{ErrorKind, UploadError};
use crate::proto::exchange::Exchange;
use crate::proto::proxy::{self, Proxies};
use crate::proto::redirect::{self, Hop};

/// A resumable session's next request, or the checksum it waits for.
pub(crate) enum Step {
    /// The request, ready to go.
    Ready(Target, Box<Exchange>),
    /// The checksum of the piece `(start, len)` is needed first.
    NeedsChecksum(u64, u64),
}

/// True when storage of `capacity` holds `needed` bytes and not much more
/// (a request keeps its storage while in flight).
fn fits(capacity: usize, needed: usize) -> bool {
    (needed..=2 * needed + 256).contains(&capacity)
}

/// The absolute URL of a target (for resolving a relative `Location`).
pub(crate) fn url_of(target: &Target) -> String {
    let scheme = match target.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    format!("{scheme}://{}{}", target.authority, target.path_and_query)
}

/// The request head for `body` (a form, raw bytes, or none) with the
/// transfer's method, headers and proxy, in `spare` when it is about the
/// right size, else at its exact size.
pub(crate) fn write_head(
    target: &Target,
    transfer: &Transfer,
    body: &Body,
    mut spare: Vec<u8>,
) -> Result<Vec<u8>, UploadError> {
    let mut pairs: Vec<(&str, &str)> = transfer.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    // Plain http through a proxy: the absolute-form target and the proxy's
    // credentials (https goes through a tunnel: the origin sees neither).
    let absolute;
    let target = match &transfer.proxy {
        Some(proxy) if target.scheme == Scheme::Http => {
            if let Some(authorization) = &proxy.authorization {
                pairs.push(("Proxy-Authorization", authorization));
            }
            absolute = proxy::absolute_form(target);
            &absolute
        }
        _ => target,
    };
    let head = if body.content_type().is_empty() {
        RequestHead::raw(target, body.content_length())
    } else {
        RequestHead::new(target, body.content_type(), body.content_length())
    };
    let expect = transfer.expect && body.content_length() > 0;
    let head = head.method(&transfer.method).headers(pairs).expect_continue(expect);
    HEAD_SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        head.write(scratch).map_err(|e| invalid(&e))?;
        spare.clear();
        let exact = if fits(spare.capacity(), scratch.len()) {
            spare.extend_from_slice(scratch);
            spare
        } else {
            scratch.to_vec()
        };
        if scratch.capacity() > 16 * 1024 {
            *scratch = Vec::new();
        }
        Ok(exact)
    })
}

thread_local! {
    /// Heads are written here first, then copied at their exact size (one
    /// allocation per head, none wasted while the upload is in flight).
    static HEAD_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Transfer {
    /// Picks the proxy for `target` (after a redirect, again).
    pub(crate) fn route(&mut self, target: &Target, proxies: &Proxies) {
        self.proxy = proxies
            .for_target(target.scheme == Scheme::Https, &target.host)
            .map(|p| Box::new(p.clone()));
    }

    /// A `HEAD` request's response has no body, whatever its head says.
    pub(crate) fn mark_head_request(&self, exchange: &mut Exchange) {
        if self.method == "HEAD" {
            let total = exchange.body().content_length();
            exchange.set_window(0, total, true, false);
        }
    }

    /// The same request again without `Expect` (after a 417).
    pub(crate) fn without_expect(
        &mut self,
        target: Target,
        previous: &Exchange,
    ) -> Result<(Target, Exchange), UploadError> {
        self.expect = false;
        let body = previous.body().clone();
        let head = write_head(&target, self, &body, Vec::new())?;
        let mut next = previous.follow(head, body);
        self.mark_head_request(&mut next);
        Ok((target, next))
    }

    /// The next request after a redirect: the same body (sent again from
    /// byte 0) or none, to the hop's URL; credentials dropped on another
    /// origin.
    pub(crate) fn follow(
        &mut self,
        hop: Hop,
        previous: &Exchange,
        proxies: &Proxies,
    ) -> Result<(Target, Exchange), UploadError> {
        let target = Target::parse(&hop.url).map_err(|e| invalid(&e))?;
        if hop.cross_origin {
            self.headers.retain(|(name, _)| !redirect::is_credential(name));
        }
        let body = if hop.keep_body {
            previous.body().clone()
        } else {
            self.headers.retain(|(name, _)| !redirect::is_content_header(name));
            Body::raw(0, "")
        };
        self.method = hop.method.into();
        self.hops += 1;
        self.route(&target, proxies);
        let head = write_head(&target, self, &body, Vec::new())?;
        let mut next = previous.follow(head, body);
        self.mark_head_request(&mut next);
        Ok((target, next))
    }

    /// The resumable session's next request (after `previous`, whose
    /// progress carries over).
    pub(crate) fn resume_step(
        &mut self,
        previous: Option<&Exchange>,
        limits: Limits,
        proxies: &Proxies,
    ) -> Result<Step, UploadError> {
        let internal = || UploadError::new(ErrorKind::Internal, "not a resumable upload");
        let resume = self.resumable.as_mut().ok_or_else(internal)?;
        let step = resume.session.poll_step();
        let piece = (step.start, step.len);
        let checksum = match &resume.checksum {
            _ if !step.checksum => None,
            Some((at, value)) if *at == piece => Some(value.clone()),
            _ => return Ok(Step::NeedsChecksum(step.start, step.len)),
        };
        resume.session.handle_sent(&step);
        let total = resume.total;
        let target = Target::parse(&step.url).map_err(|e| invalid(&e))?;
        self.method = step.method.into();
        self.headers = step.headers;
        if let Some(value) = checksum {
            self.headers.push(("Upload-Checksum".into(), value));
        }
        self.route(&target, proxies);
        let body = Body::raw(step.len, "");
        let head = write_head(&target, self, &body, Vec::new())?;
        let mut exchange = match previous {
            Some(previous) => previous.follow(head, body),
            None => Exchange::new(head, body, limits),
        };
        exchange.set_window(step.start, total, step.method == "HEAD", step.interim);
        Ok(Step::Ready(target, Box::new(exchange)))
    }
}

pub(crate) fn invalid(e: &dyn std::fmt::Display) -> UploadError {
    UploadError::new(ErrorKind::InvalidArgument, e.to_string())
}
