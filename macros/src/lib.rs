//! The `#[ripple::main]` and `#[ripple::test]` attributes, which run an `async fn` on ripple.
//!
//! Both attributes turn an `async fn` into a plain `fn` that builds a ripple
//! runtime and blocks on the original body. The function's attributes,
//! visibility and return type are kept, so `main` and tests may return a
//! `Result` and use `?`. `#[ripple::test]` also adds `#[test]`.
//!
//! Plain `#[ripple::main]` builds a **current-thread** runtime (unlike
//! `#[tokio::main]`, whose default is tokio's multi-thread runtime): every task
//! runs on the main thread. Ask for worker threads with tokio's spelling,
//! `#[ripple::main(flavor = "multi_thread")]`, optionally with
//! `worker_threads = N` (default: one per core, or `RIPPLE_WORKER_THREADS`);
//! `flavor = "current_thread"` says the default out loud.
//!
//! For example, `#[ripple::main] async fn main() { body }` becomes:
//!
//! ```text
//! fn main() {
//!     let body = async move { body };
//!     #[allow(clippy::expect_used)]
//!     {
//!         return ::ripple::runtime::Builder::new_current_thread()
//!             .build()
//!             .expect("failed to build the ripple runtime")
//!             .block_on(body);
//!     }
//! }
//! ```
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::undocumented_unsafe_blocks
)]

use proc_macro::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

/// Runs an `async fn main()` on a ripple runtime: current-thread by default,
/// or `#[ripple::main(flavor = "multi_thread", worker_threads = 2)]`.
///
/// The function may return anything a plain `main` may, such as
/// `Result<(), E>`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand("main", args, item)
}

/// Runs an `async fn` test on a ripple runtime: current-thread by default, or
/// `#[ripple::test(flavor = "multi_thread", worker_threads = 2)]`.
///
/// The test may return anything a plain `#[test]` may, such as
/// `io::Result<()>`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand("test", args, item)
}

/// Rewrites the `async fn` in `item` for the attribute named `name`.
fn expand(name: &str, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    // A bad argument is reported, and the function still expanded (with the default runtime)
    // so that it is the only error.
    let builder = match parse_args(name, args) {
        Ok(builder) => builder,
        Err((message, span)) => {
            out.extend(error(&message, span));
            "::ripple::runtime::Builder::new_current_thread()".to_string()
        }
    };

    let mut tokens: Vec<TokenTree> = item.clone().into_iter().collect();
    let Some(fn_at) = tokens.iter().position(|t| is_ident(t, "fn")) else {
        let message = format!("#[ripple::{name}] can only be applied to an `async fn`");
        out.extend(error(&message, Span::call_site()));
        out.extend(item);
        return out;
    };
    // Only a function body can end the item: a `{ ... }` group.
    let body = match tokens.pop() {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => g,
        _ => {
            let message = format!("#[ripple::{name}] expects a function with a body");
            out.extend(error(&message, tokens[fn_at].span()));
            out.extend(item);
            return out;
        }
    };
    // `async` sits among the qualifiers before `fn`; the generated fn is sync.
    let Some(async_at) = tokens[..fn_at].iter().position(|t| is_ident(t, "async")) else {
        let what = match name {
            "main" => "an `async fn main()`",
            _ => "an `async fn` test",
        };
        let message = format!(
            "the `async` keyword is missing from the function declaration: \
             #[ripple::{name}] runs {what} on the ripple runtime"
        );
        out.extend(error(&message, tokens[fn_at].span()));
        // Emitting the untouched fn keeps the error above the only one reported.
        out.extend(item);
        return out;
    };
    tokens.remove(async_at);

    // `#[test]` goes first so the harness sees the generated sync fn.
    if name == "test" {
        out.extend(parse("#[::core::prelude::v1::test]"));
    }
    out.extend(tokens);
    // Binding the body first lets the declared return type drive inference,
    // so `?` works inside it.
    let mut block = parse("let body = async move");
    block.extend([TokenTree::Group(body)]);
    block.extend(parse(&format!(
        "; #[allow(clippy::expect_used)] {{
            return {builder}
                .build()
                .expect(\"failed to build the ripple runtime\")
                .block_on(body);
        }}"
    )));
    out.extend([TokenTree::Group(Group::new(Delimiter::Brace, block))]);
    out
}

/// What the attribute's arguments may be, for error messages.
const ACCEPTED: &str = "accepted: `flavor = \"current_thread\"`, `flavor = \"multi_thread\"`, \
                        and `worker_threads = N` with `flavor = \"multi_thread\"`";

/// Parses `flavor = "..."` and `worker_threads = N` (comma-separated) into the
/// expression that makes the runtime's builder; an error names what is wrong
/// and where.
fn parse_args(name: &str, args: TokenStream) -> Result<String, (String, Span)> {
    let mut flavor: Option<(String, Span)> = None;
    let mut workers: Option<(String, Span)> = None;
    let mut tokens = args.into_iter().peekable();
    while let Some(token) = tokens.next() {
        let TokenTree::Ident(key) = &token else {
            return Err((
                format!("#[ripple::{name}]: unexpected `{token}`; {ACCEPTED}"),
                token.span(),
            ));
        };
        let key_name = key.to_string();
        match tokens.next() {
            Some(TokenTree::Punct(p)) if p.as_char() == '=' => {}
            _ => {
                return Err((
                    format!(
                        "#[ripple::{name}]: `{key_name}` needs a value \
                         (`{key_name} = ...`); {ACCEPTED}"
                    ),
                    key.span(),
                ))
            }
        }
        let value = match tokens.next() {
            Some(TokenTree::Literal(literal)) => literal,
            _ => {
                return Err((
                    format!("#[ripple::{name}]: `{key_name} = ` needs a literal value; {ACCEPTED}"),
                    key.span(),
                ))
            }
        };
        match key_name.as_str() {
            "flavor" => {
                let text = value.to_string();
                let flavour = text.trim_matches('"');
                if !text.starts_with('"') || !matches!(flavour, "current_thread" | "multi_thread") {
                    return Err((
                        format!("#[ripple::{name}]: unknown flavor {text}; {ACCEPTED}"),
                        value.span(),
                    ));
                }
                flavor = Some((flavour.to_string(), value.span()));
            }
            "worker_threads" => {
                let text = value.to_string();
                match text.parse::<usize>() {
                    Ok(n) if n > 0 => workers = Some((text, value.span())),
                    _ => {
                        return Err((
                            format!(
                                "#[ripple::{name}]: `worker_threads` must be a positive \
                                 number, not {text}"
                            ),
                            value.span(),
                        ))
                    }
                }
            }
            _ => {
                return Err((
                    format!("#[ripple::{name}]: unknown argument `{key_name}`; {ACCEPTED}"),
                    key.span(),
                ))
            }
        }
        match tokens.next() {
            None => break,
            Some(TokenTree::Punct(p)) if p.as_char() == ',' => {}
            Some(other) => {
                return Err((
                    format!("#[ripple::{name}]: expected `,` between arguments, found `{other}`"),
                    other.span(),
                ))
            }
        }
    }
    match (flavor, workers) {
        (Some((flavour, _)), Some((n, _))) if flavour == "multi_thread" => Ok(format!(
            "::ripple::runtime::Builder::new_multi_thread().worker_threads({n})"
        )),
        (Some((flavour, _)), None) if flavour == "multi_thread" => {
            Ok("::ripple::runtime::Builder::new_multi_thread()".to_string())
        }
        (_, Some((_, span))) => Err((
            format!(
                "#[ripple::{name}]: `worker_threads` needs `flavor = \"multi_thread\"`: a \
                 current-thread runtime runs every task on one thread"
            ),
            span,
        )),
        _ => Ok("::ripple::runtime::Builder::new_current_thread()".to_string()),
    }
}

/// Whether `token` is the identifier or keyword `word`.
fn is_ident(token: &TokenTree, word: &str) -> bool {
    matches!(token, TokenTree::Ident(i) if i.to_string() == word)
}

/// Parses fixed Rust source written in this crate.
fn parse(source: &str) -> TokenStream {
    source.parse().expect("the macro's own tokens parse")
}

/// Builds `compile_error!("message")` with every token at `span`, so the
/// compiler points at the offending code rather than the attribute.
fn error(message: &str, span: Span) -> TokenStream {
    let mut literal = Literal::string(message);
    literal.set_span(span);
    let mut args = Group::new(Delimiter::Parenthesis, TokenTree::Literal(literal).into());
    args.set_span(span);
    let mut bang = Punct::new('!', Spacing::Alone);
    bang.set_span(span);
    let mut semi = Punct::new(';', Spacing::Alone);
    semi.set_span(span);
    TokenStream::from_iter([
        TokenTree::Ident(Ident::new("compile_error", span)),
        TokenTree::Punct(bang),
        TokenTree::Group(args),
        TokenTree::Punct(semi),
    ])
}
