//! The slow-client watch on every connection `chat up` accepts, plain or TLS
//! (service_kit's `watch_socket`; see its module for why actix needs it).

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use service_kit::ClientTimeouts;
use std::any::Any;

/// The TLS stream actix hands `on_connect` when serving HTTPS.
type Tls = actix_tls::accept::rustls_0_23::TlsStream<TcpStream>;

/// An `HttpServer::on_connect` callback that watches each connection.
pub fn watch(
    timeouts: ClientTimeouts,
) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    move |io, extensions| {
        if service_kit::watch_tcp(io, timeouts, extensions) {
            return;
        }
        match io.downcast_ref::<Tls>() {
            Some(tls) => service_kit::watch_socket(tls.get_ref().0, timeouts, extensions),
            None => {
                tracing::warn!("a connection of an unknown type is not watched for slow clients")
            }
        }
    }
}
