//! The `#[ripple::main]` and `#[ripple::test]` attributes, which run an `async fn` on ripple.
//!
//! Both attributes turn an `async fn` into a plain `fn` that builds a
//! current-thread ripple runtime and blocks on the original body. The
//! function's attributes, visibility and return type are kept, so `main` and
//! tests may return a `Result` and use `?`. `#[ripple::test]` also adds
//! `#[test]`. For example, `#[ripple::main] async fn main() { body }` becomes:
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

/// Runs an `async fn main()` on a current-thread ripple runtime.
///
/// The function may return anything a plain `main` may, such as
/// `Result<(), E>`. The attribute takes no arguments.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand("main", args, item)
}

/// Runs an `async fn` test on a current-thread ripple runtime.
///
/// The test may return anything a plain `#[test]` may, such as
/// `io::Result<()>`. The attribute takes no arguments.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand("test", args, item)
}

/// Rewrites the `async fn` in `item` for the attribute named `name`.
fn expand(name: &str, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    // Arguments are a mistake, but expanding anyway avoids follow-up errors.
    if let Some(arg) = args.into_iter().next() {
        let message = format!("#[ripple::{name}] takes no arguments");
        out.extend(error(&message, arg.span()));
    }

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
    block.extend(parse(
        "; #[allow(clippy::expect_used)] {
            return ::ripple::runtime::Builder::new_current_thread()
                .build()
                .expect(\"failed to build the ripple runtime\")
                .block_on(body);
        }",
    ));
    out.extend([TokenTree::Group(Group::new(Delimiter::Brace, block))]);
    out
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
