#ifndef TRADEBUS_CRABBITMQ_SHIM_H
#define TRADEBUS_CRABBITMQ_SHIM_H
#include <amqp.h>

/// Logs in with PLAIN credentials. `amqp_login` is variadic, which Swift cannot call, so this
/// fixed-argument wrapper forwards to it. Also announces the client capabilities TradeBus relies on
/// (publisher confirms and basic.nack) in the client properties.
amqp_rpc_reply_t tradebus_amqp_login_plain(amqp_connection_state_t state,
                                           const char *vhost,
                                           int channel_max,
                                           int frame_max,
                                           int heartbeat,
                                           const char *user,
                                           const char *password,
                                           const char *connection_name);

#endif
