//! The last few answers of a read, each under the key of what it was made from (the state of
//! the rows it read, the caller, the arguments): dozens of clients listing hundreds of
//! instances at once would otherwise each render the same answer.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Answers `V` kept under keys `K`. `V` is cloned for each caller, so it should be cheap to
/// clone (an `Arc`, `Bytes`).
pub struct Kept<K, V> {
    slots: Mutex<VecDeque<(K, V)>>,
    /// Answers being rendered. Callers asking for one meanwhile wait for that rendering and
    /// are all woken when it is done: a lock handed from waiter to waiter served the last of
    /// 64 callers only after 63 hand-overs, each behind other work on the runtime.
    rendering: Mutex<Vec<(K, Arc<OnceCell<V>>)>>,
}

/// How many answers a [`Kept`] holds (the person's, and a few instances' of their subtrees).
const KEPT: usize = 8;

impl<K, V> Default for Kept<K, V> {
    fn default() -> Self {
        Kept {
            slots: Mutex::new(VecDeque::new()),
            rendering: Mutex::new(Vec::new()),
        }
    }
}

impl<K: PartialEq + Clone, V: Clone> Kept<K, V> {
    /// The answer kept under `key`, or the one `render` makes: rendered once however many
    /// callers ask for it at the same time. A failed rendering is not kept; the callers
    /// waiting for it render again.
    pub async fn get_or_render<E, F, Fut>(&self, key: K, render: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = {
            // Lock order: rendering, then slots.
            let mut rendering = self.rendering.lock().expect("renderings poisoned");
            if let Some(kept) = self.get(&key) {
                return Ok(kept);
            }
            match rendering.iter().find(|(k, _)| *k == key) {
                Some((_, cell)) => cell.clone(),
                None => {
                    // A rendering whose callers all went away (a client that hung up) leaves
                    // a cell no one holds.
                    rendering.retain(|(_, c)| Arc::strong_count(c) > 1);
                    let cell = Arc::new(OnceCell::new());
                    rendering.push((key.clone(), cell.clone()));
                    cell
                }
            }
        };
        let result = cell.get_or_try_init(render).await.cloned();
        let mut rendering = self.rendering.lock().expect("renderings poisoned");
        if let Some(i) = rendering
            .iter()
            .position(|(k, c)| *k == key && Arc::ptr_eq(c, &cell))
        {
            rendering.swap_remove(i);
            if let Ok(answer) = &result {
                self.keep(key, answer.clone());
            }
        }
        result
    }

    fn get(&self, key: &K) -> Option<V> {
        let slots = self.slots.lock().expect("kept answers poisoned");
        slots.iter().find(|(k, _)| k == key).map(|(_, r)| r.clone())
    }

    fn keep(&self, key: K, answer: V) {
        let mut slots = self.slots.lock().expect("kept answers poisoned");
        slots.retain(|(k, _)| *k != key);
        if slots.len() == KEPT {
            slots.pop_front();
        }
        slots.push_back((key, answer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Answer = Arc<str>;

    fn answer(text: &str) -> Result<Answer, String> {
        Ok(text.into())
    }

    #[test]
    fn a_kept_answer_is_found_by_its_whole_key_and_the_oldest_goes_first() {
        let kept: Kept<(u64, Option<String>), Answer> = Kept::default();
        let make = |t: &str| answer(t).unwrap();
        kept.keep((1, None), make("all at 1"));
        kept.keep((1, Some("a".into())), make("a's at 1"));
        assert_eq!(&*kept.get(&(1, None)).unwrap(), "all at 1");
        assert_eq!(&*kept.get(&(1, Some("a".into()))).unwrap(), "a's at 1");
        // Another state of the rows, or another caller: not the same answer.
        assert!(kept.get(&(2, None)).is_none());
        assert!(kept.get(&(1, Some("b".into()))).is_none());
        // Kept again under the same key: replaced, not doubled.
        kept.keep((1, None), make("all at 1, again"));
        assert_eq!(&*kept.get(&(1, None)).unwrap(), "all at 1, again");
        for v in 2..=(KEPT as u64) {
            kept.keep((v, None), make("later"));
        }
        // Eight held: the caller "a" at 1 was the oldest and is gone.
        assert!(kept.get(&(1, Some("a".into()))).is_none());
        assert!(kept.get(&(1, None)).is_some());
        assert_eq!(&*kept.get(&(2, None)).unwrap(), "later");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_arriving_together_share_one_rendering() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let kept: Arc<Kept<u64, Answer>> = Arc::default();
        let renders = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let (kept, renders, mut released) =
                    (kept.clone(), renders.clone(), released.clone());
                tokio::spawn(async move {
                    kept.get_or_render(7, async || {
                        renders.fetch_add(1, Ordering::SeqCst);
                        // Held until every caller has asked.
                        released.wait_for(|r| *r).await.map_err(|e| e.to_string())?;
                        answer("at 7")
                    })
                    .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for c in callers {
            assert_eq!(&*c.await.unwrap().unwrap(), "at 7");
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        // Kept: a later caller is answered without a rendering.
        let again = kept
            .get_or_render(7, async || Err("not rendered again".to_string()))
            .await;
        assert_eq!(&*again.unwrap(), "at 7");
        // Another key is its own rendering.
        let other = kept.get_or_render(8, async || answer("at 8")).await;
        assert_eq!(&*other.unwrap(), "at 8");
    }

    #[tokio::test]
    async fn a_failed_rendering_is_not_kept() {
        let kept: Kept<u64, Answer> = Kept::default();
        let failed = kept
            .get_or_render(1, async || Err("the database is away".to_string()))
            .await;
        assert_eq!(failed.err().as_deref(), Some("the database is away"));
        let next = kept.get_or_render(1, async || answer("back")).await;
        assert_eq!(&*next.unwrap(), "back");
        assert!(kept.rendering.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_rendering_whose_callers_went_away_is_not_left_behind() {
        let kept: Kept<u64, Answer> = Kept::default();
        let hung_up = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            kept.get_or_render(1, async || -> Result<Answer, String> {
                std::future::pending().await
            }),
        )
        .await;
        assert!(hung_up.is_err());
        assert_eq!(kept.rendering.lock().unwrap().len(), 1);
        let next = kept.get_or_render(2, async || answer("at 2")).await;
        assert_eq!(&*next.unwrap(), "at 2");
        assert!(kept.rendering.lock().unwrap().is_empty());
    }
}
