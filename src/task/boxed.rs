//! [`BoxTask`]: a task whose type can be named.

use std::future::Future;

use futures::future::BoxFuture;

use super::{RetryPredicate, Task, TaskContext};

/// A boxed handler: the handler of a [`BoxTask`].
pub type BoxHandler<T, E> =
    Box<dyn Fn(TaskContext) -> BoxFuture<'static, Result<T, E>> + Send + Sync>;

/// A boxed retry predicate: the predicate of a [`BoxTask`].
pub type BoxRetryPredicate<E> = Box<dyn Fn(&E) -> bool + Send + Sync>;

/// A task with its handler, its future and its retry predicate boxed: a type you can name,
/// so a helper function can return a task, a struct can store one, and tasks with different
/// handlers can share a `Vec`. Made by [`Task::boxed`]; enqueued like any task.
///
/// Boxing costs an allocation per attempt (the future) and one indirect call; plain
/// [`Task`]s pay neither.
///
/// ```
/// use taskrunner::{BoxTask, Task, TaskRunner};
///
/// fn fetch(url: &str) -> BoxTask<usize, String> {
///     let url = url.to_owned();
///     Task::new("fetch", move |ctx| {
///         let url = url.clone();
///         async move { Ok::<_, String>(url.len() + ctx.attempt() as usize) }
///     })
///     .boxed()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let tasks: Vec<BoxTask<usize, String>> = vec![fetch("a.io"), fetch("bb.io").priority(5)];
/// let mut handles = Vec::new();
/// for task in tasks {
///     handles.push(runner.enqueue_task(task)?);
/// }
/// assert_eq!(handles.pop().unwrap().await?, 6);
/// assert_eq!(handles.pop().unwrap().await?, 5);
/// # Ok(())
/// # }
/// ```
pub type BoxTask<T, E> = Task<BoxHandler<T, E>, BoxRetryPredicate<E>>;

impl<F, Fut, P, T, E> Task<F, P>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    P: RetryPredicate<E>,
    T: 'static,
    E: 'static,
{
    /// This task with its handler, future and retry predicate boxed: a [`BoxTask`], whose
    /// type can be named (see there).
    pub fn boxed(self) -> BoxTask<T, E> {
        let Task {
            name,
            queue,
            priority,
            options,
            retry_if,
            call_id,
            handler,
        } = self;
        Task {
            name,
            queue,
            priority,
            options,
            retry_if: Box::new(move |error: &E| retry_if.should_retry(error)),
            call_id,
            handler: Box::new(move |ctx: TaskContext| {
                Box::pin(handler(ctx)) as BoxFuture<'static, _>
            }),
        }
    }
}
