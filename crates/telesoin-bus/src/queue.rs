//! A socket's queue of outbound frames: bounded, any number of senders, one receiver.
//!
//! It replaces tokio's `mpsc::channel` for the one queue every socket has: tokio's allocates a
//! block of 32 slots and two cache-padded halves up front, about 1.3 KiB per socket whether
//! it is idle or not. This one is a locked `VecDeque`: nothing is allocated until frames are
//! queued, and a burst's room is given back once the queue is empty again.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};

use parking_lot::Mutex;

use crate::Outbound;

/// Room kept by an empty queue: what one frame at a time needs, not what a burst needed.
const KEPT: usize = 4;

struct State {
    frames: VecDeque<Outbound>,
    /// The receiver's task, waiting for a frame.
    waker: Option<Waker>,
    senders: usize,
    receiver: bool,
}

impl State {
    fn pop(&mut self) -> Option<Outbound> {
        let frame = self.frames.pop_front();
        if self.frames.is_empty() && self.frames.capacity() > KEPT {
            self.frames = VecDeque::new();
        }
        frame
    }
}

struct Shared {
    bound: usize,
    state: Mutex<State>,
}

/// The sending half; cloned by whoever delivers to the socket.
pub struct Sender(Arc<Shared>);

/// The receiving half, read by the socket's task.
pub struct Receiver(Arc<Shared>);

/// Why [`Sender::try_send`] gave the frame back.
#[derive(Debug)]
pub enum TrySendError {
    /// `bound` frames are queued already: the socket is not keeping up.
    Full(Outbound),
    /// The receiver is gone.
    Closed(Outbound),
}

/// A queue that holds at most `bound` frames (at least one).
pub fn channel(bound: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        bound: bound.max(1),
        state: Mutex::new(State {
            frames: VecDeque::new(),
            waker: None,
            senders: 1,
            receiver: true,
        }),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl Sender {
    /// Queues `frame` at once, or gives it back (queue full, receiver gone).
    pub fn try_send(&self, frame: Outbound) -> Result<(), TrySendError> {
        let waker = {
            let mut s = self.0.state.lock();
            if !s.receiver {
                return Err(TrySendError::Closed(frame));
            }
            if s.frames.len() >= self.0.bound {
                return Err(TrySendError::Full(frame));
            }
            s.frames.push_back(frame);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Whether both are senders of the same queue.
    pub fn same_channel(&self, other: &Sender) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        self.0.state.lock().senders += 1;
        Sender(self.0.clone())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.0.state.lock();
            s.senders -= 1;
            if s.senders == 0 { s.waker.take() } else { None }
        };
        // The last sender gone: the receiver hears the end once the queue is empty.
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("queue::Sender")
    }
}

impl Receiver {
    /// The next frame; None once every sender is gone and the queue is empty. Cancel-safe: a
    /// frame is taken only when it is returned.
    pub async fn recv(&mut self) -> Option<Outbound> {
        poll_fn(|cx| {
            let mut s = self.0.state.lock();
            if let Some(frame) = s.pop() {
                return Poll::Ready(Some(frame));
            }
            if s.senders == 0 {
                return Poll::Ready(None);
            }
            match &mut s.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                w => *w = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        self.0.state.lock().pop()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let frames = {
            let mut s = self.0.state.lock();
            s.receiver = false;
            s.waker = None;
            std::mem::take(&mut s.frames)
        };
        drop(frames);
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("queue::Receiver")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text(s: &str) -> Outbound {
        Outbound::Text(s.into())
    }

    #[tokio::test]
    async fn bounded_in_order_and_ends_with_its_last_sender() {
        let (tx, mut rx) = channel(2);
        let tx2 = tx.clone();
        assert!(tx.same_channel(&tx2));
        tx.try_send(text("a")).expect("room");
        tx2.try_send(text("b")).expect("room");
        assert!(matches!(tx.try_send(text("c")), Err(TrySendError::Full(_))));
        assert!(matches!(rx.recv().await, Some(Outbound::Text(t)) if &*t == "a"));
        tx.try_send(text("c")).expect("room again");
        drop(tx);
        drop(tx2);
        assert!(matches!(rx.recv().await, Some(Outbound::Text(t)) if &*t == "b"));
        assert!(matches!(rx.try_recv(), Some(Outbound::Text(t)) if &*t == "c"));
        assert!(
            rx.recv().await.is_none(),
            "every sender gone, the queue empty"
        );
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_frame_and_by_the_end() {
        let (tx, mut rx) = channel(4);
        let task = tokio::spawn(async move {
            let first = rx.recv().await;
            let end = rx.recv().await;
            (first, end)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.try_send(text("x")).expect("room");
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(tx);
        let (first, end) = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("woken")
            .expect("task");
        assert!(matches!(first, Some(Outbound::Text(t)) if &*t == "x"));
        assert!(end.is_none());
    }

    #[tokio::test]
    async fn a_gone_receiver_refuses_and_frees_its_frames() {
        let (tx, rx) = channel(4);
        let frame: std::sync::Arc<str> = "kept".into();
        tx.try_send(Outbound::Text(frame.clone())).expect("room");
        drop(rx);
        assert_eq!(
            std::sync::Arc::strong_count(&frame),
            1,
            "queued frames freed"
        );
        assert!(matches!(
            tx.try_send(text("late")),
            Err(TrySendError::Closed(_))
        ));
    }

    #[test]
    fn an_empty_queue_gives_a_burst_s_room_back() {
        let (tx, mut rx) = channel(64);
        for i in 0..40 {
            tx.try_send(text(&i.to_string())).expect("room");
        }
        while rx.try_recv().is_some() {}
        assert!(rx.0.state.lock().frames.capacity() <= KEPT);
    }
}
