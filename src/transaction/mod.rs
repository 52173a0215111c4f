//! RFC 3261 §17 transactions as a sans-IO state machine.
//!
//! The layer owns every client and server transaction. It takes received messages, responses and
//! requests from the transaction user (TU), and the current time; it returns [`Output`]s to drain
//! with [`TransactionLayer::poll_output`] and the next instant it wants to be woken at
//! ([`TransactionLayer::poll_timeout`]). It never reads a clock or touches a socket, so the
//! tests below drive it figure by figure with simulated time.
//!
//! Two UA-core duties sit here because they are timer-driven like the rest (RFC 6026): the
//! server retransmits a 2xx to INVITE until the ACK arrives, and matches that ACK (which has a
//! branch of its own) by Call-ID, CSeq and From tag.

mod timers;

pub use timers::{Timer, TimerConfig};

use crate::sip::{CSeq, HeaderName, Message, Method, Request, Response, SipHeaders};
use crate::transport::peer::Peer;
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// How long a server INVITE transaction waits for the TU before sending 100 Trying itself.
pub const TRYING_DELAY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Bytes to put on the wire.
    Transmit { peer: Peer, data: Bytes },
    /// A new request for the TU; answer it with [`TransactionLayer::respond`].
    Request {
        tx: TxId,
        request: Request,
        peer: Peer,
    },
    /// An ACK to a 2xx (a transaction of its own; the TU updates the dialog).
    Ack { request: Request, peer: Peer },
    /// The INVITE of `tx` was CANCELled; the layer already answered it 487.
    Cancelled { tx: TxId },
    /// A response to a request the TU sent.
    Response { tx: TxId, response: Response },
    /// Client: no final response in time (act as if 408). Server: no ACK for our final response.
    Timeout { tx: TxId },
}

// The RFC's own names for the four machines (§17.1.1, §17.1.2, §17.2.1, §17.2.2).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    ServerInvite,
    ServerNonInvite,
    ClientInvite,
    ClientNonInvite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    /// RFC 6026: a 2xx was sent (server) or received (client).
    Accepted,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    branch: String,
    /// Server keys include the top Via sent-by (§17.2.3); client keys leave it empty.
    sent_by: String,
    method: Method,
}

/// Identifies the INVITE that an ACK to a 2xx acknowledges.
type AckKey = (String, u32, String);
/// Identifies a request that reached us twice by different paths (§8.2.2.2).
type MergeKey = (String, String, u32, Method);

struct Tx {
    role: Role,
    state: State,
    peer: Peer,
    key: Key,
    request: Request,
    request_bytes: Bytes,
    last_response: Option<Bytes>,
    ack_bytes: Option<Bytes>,
    interval: Duration,
    due: [Option<Instant>; 3],
    ack_key: Option<AckKey>,
    merge_key: Option<MergeKey>,
}

/// The stateless 503 + Retry-After for a datagram that is a new INVITE (no To tag), for shedding
/// load before any state is made; None for anything else. Only a message that starts with
/// `INVITE ` is parsed.
pub fn refuse_new_call(datagram: &[u8]) -> Option<Bytes> {
    if !datagram.starts_with(b"INVITE ") {
        return None;
    }
    let Ok(Message::Request(req)) = crate::sip::parse_message(Bytes::copy_from_slice(datagram))
    else {
        return None;
    };
    if req.header_to().is_some_and(|t| t.tag().is_some())
        || crate::sip::check_request(&req).is_err()
    {
        return None;
    }
    Some(overloaded(&req).to_bytes())
}

/// 503 (Overloaded) with Retry-After and a To tag, as every shedding answer is made.
fn overloaded(req: &Request) -> Response {
    let mut busy =
        Response::for_request(req, 503, "Service Unavailable (Overloaded)").with_to_tag("overload");
    busy.headers.push(HeaderName::RetryAfter, "5");
    busy
}

/// Live transactions at most, by default: beyond, new requests are refused statelessly with
/// 503 and Retry-After instead of growing the table without bound (new calls already at three
/// quarters of it). Every call keeps two for 64·T1 = 32 s after it is answered and after it
/// ends (RFC 6026, timer J), about 4 KiB each: 400 000 hold some 4 600 joins/s for 1.5 GiB.
pub const DEFAULT_CAPACITY: usize = 400_000;

pub struct TransactionLayer {
    config: TimerConfig,
    /// Requests and responses sent again by a retransmission timer (A, E, G, 2xx).
    retransmitted: u64,
    /// Live transactions at most (see [`DEFAULT_CAPACITY`]).
    capacity: usize,
    next_id: u64,
    /// Boxed: at thousands of calls per second the table holds hundreds of thousands of
    /// transactions, and growing it then moves pointers, not the transactions (a move of
    /// ~150 MB held the core up for tens of milliseconds, enough to make callers retransmit).
    txs: HashMap<TxId, Box<Tx>>,
    index: HashMap<Key, TxId>,
    accepted: HashMap<AckKey, TxId>,
    merged: HashMap<MergeKey, TxId>,
    timers: BinaryHeap<Reverse<(Instant, TxId, Timer)>>,
    outputs: VecDeque<Output>,
}

fn timer_slot(t: Timer) -> usize {
    match t {
        Timer::Retransmit => 0,
        Timer::Timeout => 1,
        Timer::Linger => 2,
    }
}

fn server_key(req: &Request) -> Option<Key> {
    let via = req.top_via()?;
    let method = match req.method {
        Method::Ack => Method::Invite,
        ref m => m.clone(),
    };
    let sent_by = format!(
        "{}:{}",
        via.host.to_ascii_lowercase(),
        via.port.unwrap_or(5060)
    );
    Some(Key {
        branch: via.branch().unwrap_or_default().to_string(),
        sent_by,
        method,
    })
}

fn client_key_of_response(resp: &Response) -> Option<Key> {
    let via = resp.top_via()?;
    let cseq = resp.cseq()?;
    Some(Key {
        branch: via.branch()?.to_string(),
        sent_by: String::new(),
        method: cseq.method,
    })
}

fn ack_key(msg: &impl SipHeaders) -> Option<AckKey> {
    Some((
        msg.call_id()?.to_string(),
        msg.cseq()?.seq,
        msg.header_from()?.tag()?.to_string(),
    ))
}

impl TransactionLayer {
    pub fn new(config: TimerConfig) -> Self {
        Self::with_capacity(config, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(config: TimerConfig, capacity: usize) -> Self {
        Self {
            config,
            capacity,
            next_id: 1,
            retransmitted: 0,
            txs: HashMap::new(),
            index: HashMap::new(),
            accepted: HashMap::new(),
            merged: HashMap::new(),
            timers: BinaryHeap::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Messages sent again by a retransmission timer since the start (a peer that does not
    /// answer or acknowledge, or a network that loses).
    pub fn retransmitted(&self) -> u64 {
        self.retransmitted
    }

    /// Live transactions (for the leak checks the load tests make).
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Drop stale heap entries so the answer is exact.
        while let Some(Reverse((at, id, t))) = self.timers.peek().copied() {
            if self
                .txs
                .get(&id)
                .is_some_and(|tx| tx.due[timer_slot(t)] == Some(at))
            {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Sends bytes outside any transaction (ACK to a 2xx, keep-alive replies, stateless answers).
    pub fn transmit(&mut self, peer: Peer, data: Bytes) {
        self.outputs.push_back(Output::Transmit { peer, data });
    }

    /// A message arrived (already parsed and checked by the transport).
    pub fn handle_message(&mut self, msg: Message, peer: Peer, now: Instant) {
        match msg {
            Message::Request(req) => self.handle_request(req, peer, now),
            Message::Response(resp) => self.handle_response(resp, now),
        }
    }

    fn handle_request(&mut self, req: Request, peer: Peer, now: Instant) {
        let Some(key) = server_key(&req) else { return };
        if req.method == Method::Ack {
            return self.handle_ack(req, key, peer, now);
        }
        if let Some(&id) = self.index.get(&key) {
            // A retransmission: absorb it, or repeat our last response (§17.2.1, §17.2.2).
            if let Some(tx) = self.txs.get(&id) {
                if tx.state != State::Confirmed && tx.state != State::Trying {
                    if let Some(data) = tx.last_response.clone() {
                        self.outputs.push_back(Output::Transmit {
                            peer: tx.peer,
                            data,
                        });
                    }
                }
            }
            return;
        }
        let merge_key = match (
            req.header_to().and_then(|t| t.tag().map(str::to_string)),
            ack_key(&req),
        ) {
            (None, Some((call_id, seq, from_tag))) => {
                Some((call_id, from_tag, seq, req.method.clone()))
            }
            _ => None,
        };
        if let Some(mk) = &merge_key {
            if self.merged.contains_key(mk) {
                // §8.2.2.2: same request, another branch: it was merged (forked to us twice).
                let id = self.create(
                    Role::ServerNonInvite,
                    State::Trying,
                    peer,
                    key,
                    req.clone(),
                    Bytes::new(),
                    None,
                );
                self.respond(id, Response::for_request(&req, 482, "Loop Detected"), now);
                return;
            }
        }
        let is_invite = req.method == Method::Invite;
        let is_cancel = req.method == Method::Cancel;
        // New calls and other new work stop at three quarters of the table, so that requests
        // in calls that already exist (BYE above all: a call that cannot end holds its state
        // and retransmits) always find room; beyond that, only a CANCEL.
        let new_work = req.header_to().is_none_or(|t| t.tag().is_none());
        let limit = if new_work {
            self.capacity / 4 * 3
        } else {
            self.capacity
        };
        if self.txs.len() >= limit && !is_cancel {
            // Shed load without state: one answer per request, which the client retransmits
            // (and so gets again) until there is room.
            self.outputs.push_back(Output::Transmit {
                peer,
                data: overloaded(&req).to_bytes(),
            });
            return;
        }
        let role = if is_invite {
            Role::ServerInvite
        } else {
            Role::ServerNonInvite
        };
        let state = if is_invite {
            State::Proceeding
        } else {
            State::Trying
        };
        let id = self.create(
            role,
            state,
            peer,
            key.clone(),
            req.clone(),
            Bytes::new(),
            merge_key,
        );
        if is_invite {
            // §17.2.1: 100 Trying unless the TU answers within 200 ms (joins answer in well
            // under a millisecond; a 100 racing the 200 only confuses strict clients).
            self.schedule(id, Timer::Retransmit, now + TRYING_DELAY);
        }
        if is_cancel {
            return self.handle_cancel(id, key, req, now);
        }
        self.outputs.push_back(Output::Request {
            tx: id,
            request: req,
            peer,
        });
    }

    fn handle_cancel(&mut self, id: TxId, key: Key, req: Request, now: Instant) {
        let invite_key = Key {
            method: Method::Invite,
            ..key
        };
        let Some(&invite) = self.index.get(&invite_key) else {
            return self.respond(
                id,
                Response::for_request(&req, 481, "Call/Transaction Does Not Exist"),
                now,
            );
        };
        self.respond(id, Response::for_request(&req, 200, "OK"), now);
        // §9.2: a CANCEL after the final response has no effect.
        let proceeding = self
            .txs
            .get(&invite)
            .is_some_and(|t| t.state == State::Proceeding);
        if proceeding {
            if let Some(invite_req) = self.txs.get(&invite).map(|t| t.request.clone()) {
                let tag = invite_req
                    .header_from()
                    .and_then(|f| f.tag().map(str::to_string))
                    .unwrap_or_default();
                let resp = Response::for_request(&invite_req, 487, "Request Terminated")
                    .with_to_tag(&format!("c{tag}"));
                self.respond(invite, resp, now);
                self.outputs.push_back(Output::Cancelled { tx: invite });
            }
        }
    }

    fn handle_ack(&mut self, req: Request, key: Key, peer: Peer, now: Instant) {
        // (An ACK whose branch matches an INVITE we answered 2xx is a broken client's; it is
        // treated below like any ACK to a 2xx.)
        if let Some(&id) = self.index.get(&key) {
            let reliable = peer.transport.is_reliable();
            if let Some(tx) = self.txs.get_mut(&id) {
                match tx.state {
                    State::Completed => {
                        // §17.2.1: Completed → Confirmed; timer I absorbs ACK retransmissions.
                        tx.state = State::Confirmed;
                        tx.due = [None, None, None];
                        let linger = if reliable {
                            Duration::ZERO
                        } else {
                            self.config.t4
                        };
                        self.schedule(id, Timer::Linger, now + linger);
                        return;
                    }
                    State::Confirmed => return,
                    _ => {}
                }
            }
        }
        // An ACK to a 2xx: end our 2xx retransmissions and hand it to the TU. The transaction
        // stays (RFC 6026 timer L, 64·T1) so that a late INVITE retransmission is absorbed
        // instead of starting a new call.
        if let Some(k) = ack_key(&req) {
            if let Some(id) = self.accepted.remove(&k) {
                if let Some(tx) = self.txs.get_mut(&id) {
                    tx.state = State::Confirmed;
                    tx.due = [None, None, None];
                    tx.ack_key = None;
                }
                self.schedule(id, Timer::Linger, now + self.config.timeout());
            }
        }
        self.outputs.push_back(Output::Ack { request: req, peer });
    }

    /// The TU answers a server transaction. Responses to transactions that have moved on (the
    /// INVITE was cancelled, or timed out) are dropped.
    pub fn respond(&mut self, id: TxId, resp: Response, now: Instant) {
        let config = self.config;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let data = resp.to_bytes();
        let reliable = tx.peer.transport.is_reliable();
        let status = resp.status;
        let mut schedule = Vec::new();
        match (tx.role, tx.state) {
            (Role::ServerInvite, State::Proceeding) => {
                // Any answer from the TU replaces the pending automatic 100 Trying.
                tx.due[timer_slot(Timer::Retransmit)] = None;
                if status < 200 {
                } else if status < 300 {
                    tx.state = State::Accepted;
                    tx.interval = config.t1;
                    if !reliable {
                        schedule.push((Timer::Retransmit, now + config.t1));
                    }
                    schedule.push((Timer::Timeout, now + config.timeout()));
                    if let Some(k) = ack_key(&tx.request) {
                        tx.ack_key = Some(k.clone());
                        self.accepted.insert(k, id);
                    }
                } else {
                    tx.state = State::Completed;
                    tx.interval = config.t1;
                    // A refusal of a dialog-creating INVITE is sent once, as a stateless proxy
                    // would: an unverified (perhaps spoofed) UDP source must not get ten copies
                    // of it (timer G). A lost one is recovered by the client's retransmitted
                    // INVITE, which the transaction answers again, one for one.
                    let initial = tx.request.header_to().is_some_and(|to| to.tag().is_none());
                    if !reliable && !initial {
                        schedule.push((Timer::Retransmit, now + config.t1));
                    }
                    schedule.push((Timer::Timeout, now + config.timeout()));
                }
            }
            (Role::ServerNonInvite, State::Trying | State::Proceeding) => {
                if status < 200 {
                    tx.state = State::Proceeding;
                } else {
                    tx.state = State::Completed;
                    let linger = if reliable {
                        Duration::ZERO
                    } else {
                        config.timeout()
                    };
                    schedule.push((Timer::Linger, now + linger));
                }
            }
            _ => return,
        }
        tx.last_response = Some(data.clone());
        if status >= 200 {
            // From here on the transaction only absorbs retransmissions (with the response
            // kept above) and matches an ACK (by its key): the parsed request, most of a
            // transaction's memory, goes. Thousands of calls per second keep 64·T1 worth of
            // these alive.
            tx.request.headers = crate::sip::Headers::new();
            tx.request.body = Bytes::new();
        }
        let peer = tx.peer;
        self.outputs.push_back(Output::Transmit { peer, data });
        for (t, at) in schedule {
            self.schedule(id, t, at);
        }
    }

    /// Starts a client transaction for `req` towards `peer`.
    pub fn send_request(&mut self, req: Request, peer: Peer, now: Instant) -> TxId {
        let branch = req
            .top_via()
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let key = Key {
            branch,
            sent_by: String::new(),
            method: req.method.clone(),
        };
        let data = req.to_bytes();
        let invite = req.method == Method::Invite;
        let (role, state) = if invite {
            (Role::ClientInvite, State::Calling)
        } else {
            (Role::ClientNonInvite, State::Trying)
        };
        let id = self.create(role, state, peer, key, req, data.clone(), None);
        self.outputs.push_back(Output::Transmit { peer, data });
        if !peer.transport.is_reliable() {
            self.schedule(id, Timer::Retransmit, now + self.config.t1);
        }
        self.schedule(id, Timer::Timeout, now + self.config.timeout());
        id
    }

    /// CANCELs a pending client INVITE (§9.1). Returns the CANCEL's transaction, if one was sent.
    pub fn cancel(&mut self, invite: TxId, now: Instant) -> Option<TxId> {
        let tx = self.txs.get(&invite)?;
        if tx.role != Role::ClientInvite || !matches!(tx.state, State::Calling | State::Proceeding)
        {
            return None;
        }
        let mut c = Request::new(Method::Cancel, tx.request.uri.clone());
        for h in tx.request.headers.iter() {
            match h.name {
                HeaderName::CallId
                | HeaderName::To
                | HeaderName::From
                | HeaderName::Route
                | HeaderName::MaxForwards => c.headers.push(h.name.clone(), h.value.clone()),
                _ => {}
            }
        }
        if let Some(v) = tx.request.top_via() {
            c.headers.push_front(HeaderName::Via, v.to_string());
        }
        let seq = tx.request.cseq().map_or(1, |c| c.seq);
        c.headers.push(HeaderName::CSeq, format!("{seq} CANCEL"));
        let peer = tx.peer;
        Some(self.send_request(c, peer, now))
    }

    fn handle_response(&mut self, resp: Response, now: Instant) {
        let Some(key) = client_key_of_response(&resp) else {
            return;
        };
        // Responses that match no transaction are dropped (§17.1.3, §18.1.2).
        let Some(&id) = self.index.get(&key) else {
            return;
        };
        let config = self.config;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let reliable = tx.peer.transport.is_reliable();
        let status = resp.status;
        match (tx.role, tx.state) {
            (Role::ClientInvite, State::Calling | State::Proceeding) if status < 200 => {
                tx.state = State::Proceeding;
                tx.due[timer_slot(Timer::Retransmit)] = None;
                tx.due[timer_slot(Timer::Timeout)] = None;
            }
            (Role::ClientInvite, State::Calling | State::Proceeding | State::Accepted)
                if status < 300 =>
            {
                // RFC 6026 Accepted: pass every 2xx up (the TU ACKs each), linger 64·T1 (timer M).
                let first = tx.state != State::Accepted;
                tx.state = State::Accepted;
                tx.due = [None, None, None];
                if first {
                    self.schedule(id, Timer::Linger, now + config.timeout());
                }
            }
            (Role::ClientInvite, State::Calling | State::Proceeding) => {
                tx.state = State::Completed;
                tx.due = [None, None, None];
                let ack = ack_for_non_2xx(&tx.request, &resp).to_bytes();
                tx.ack_bytes = Some(ack.clone());
                let peer = tx.peer;
                self.outputs.push_back(Output::Transmit { peer, data: ack });
                let linger = if reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                self.schedule(id, Timer::Linger, now + linger);
            }
            (Role::ClientInvite, State::Completed) => {
                if let Some(data) = tx.ack_bytes.clone() {
                    let peer = tx.peer;
                    self.outputs.push_back(Output::Transmit { peer, data });
                }
                return;
            }
            (Role::ClientNonInvite, State::Trying | State::Proceeding) => {
                if status < 200 {
                    tx.state = State::Proceeding;
                } else {
                    tx.state = State::Completed;
                    tx.due = [None, None, None];
                    let linger = if reliable { Duration::ZERO } else { config.t4 };
                    self.schedule(id, Timer::Linger, now + linger);
                }
            }
            _ => return,
        }
        self.outputs.push_back(Output::Response {
            tx: id,
            response: resp,
        });
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(tx) = self.txs.get_mut(&id) else {
                continue;
            };
            if tx.due[timer_slot(timer)] != Some(at) {
                continue;
            }
            tx.due[timer_slot(timer)] = None;
            self.fire(id, timer, now);
        }
        self.shrink_after_a_burst();
    }

    /// After a burst the tables keep the capacity of its peak (hundreds of MiB after minutes
    /// at thousands of calls per second): give it back once they are mostly empty.
    fn shrink_after_a_burst(&mut self) {
        let len = self.txs.len();
        if self.txs.capacity() > 4 * len + 4096 {
            self.txs.shrink_to(2 * len);
            self.index.shrink_to(2 * self.index.len());
            self.accepted.shrink_to(2 * self.accepted.len());
            self.merged.shrink_to(2 * self.merged.len());
            self.timers.shrink_to(2 * self.timers.len());
            self.outputs.shrink_to(64);
        }
    }

    fn fire(&mut self, id: TxId, timer: Timer, now: Instant) {
        let config = self.config;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        match timer {
            Timer::Retransmit if tx.role == Role::ServerInvite && tx.state == State::Proceeding => {
                if tx.last_response.is_none() {
                    let trying = Response::for_request(&tx.request, 100, "Trying");
                    self.respond(id, trying, now);
                }
            }
            Timer::Retransmit => {
                let data = match tx.role {
                    Role::ClientInvite | Role::ClientNonInvite => tx.request_bytes.clone(),
                    Role::ServerInvite => tx.last_response.clone().unwrap_or_default(),
                    Role::ServerNonInvite => return,
                };
                // Timer A doubles without bound; E, G and the 2xx timer are capped at T2.
                tx.interval = match (tx.role, tx.state) {
                    (Role::ClientInvite, _) => tx.interval * 2,
                    (Role::ClientNonInvite, State::Proceeding) => config.t2,
                    _ => (tx.interval * 2).min(config.t2),
                };
                let next = now + tx.interval;
                let peer = tx.peer;
                self.retransmitted += 1;
                self.outputs.push_back(Output::Transmit { peer, data });
                self.schedule(id, Timer::Retransmit, next);
            }
            Timer::Timeout => {
                self.outputs.push_back(Output::Timeout { tx: id });
                self.terminate(id);
            }
            Timer::Linger => self.terminate(id),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        role: Role,
        state: State,
        peer: Peer,
        key: Key,
        request: Request,
        request_bytes: Bytes,
        merge_key: Option<MergeKey>,
    ) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        self.index.insert(key.clone(), id);
        if let Some(mk) = &merge_key {
            self.merged.insert(mk.clone(), id);
        }
        self.txs.insert(
            id,
            Box::new(Tx {
                role,
                state,
                peer,
                key,
                request,
                request_bytes,
                last_response: None,
                ack_bytes: None,
                interval: self.config.t1,
                due: [None, None, None],
                ack_key: None,
                merge_key,
            }),
        );
        id
    }

    fn schedule(&mut self, id: TxId, timer: Timer, at: Instant) {
        if let Some(tx) = self.txs.get_mut(&id) {
            tx.due[timer_slot(timer)] = Some(at);
            self.timers.push(Reverse((at, id, timer)));
        }
    }

    fn terminate(&mut self, id: TxId) {
        if let Some(tx) = self.txs.remove(&id) {
            if self.index.get(&tx.key) == Some(&id) {
                self.index.remove(&tx.key);
            }
            if let Some(k) = tx.ack_key {
                self.accepted.remove(&k);
            }
            if let Some(k) = tx.merge_key {
                if self.merged.get(&k) == Some(&id) {
                    self.merged.remove(&k);
                }
            }
        }
    }

    /// Whether a transaction is still running.
    pub fn is_alive(&self, id: TxId) -> bool {
        self.txs.contains_key(&id)
    }
}

/// §17.1.1.3: the ACK a client INVITE transaction sends for a non-2xx final response.
fn ack_for_non_2xx(invite: &Request, resp: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(v) = invite.top_via() {
        ack.headers.push(HeaderName::Via, v.to_string());
    }
    for h in invite.headers.iter() {
        if matches!(
            h.name,
            HeaderName::From | HeaderName::CallId | HeaderName::Route | HeaderName::MaxForwards
        ) {
            ack.headers.push(h.name.clone(), h.value.clone());
        }
    }
    if let Some(to) = resp.header(&HeaderName::To) {
        ack.headers.push(HeaderName::To, to.to_string());
    }
    let seq = invite.cseq().map_or(1, |c: CSeq| c.seq);
    ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
    ack
}

#[cfg(test)]
mod tests;
