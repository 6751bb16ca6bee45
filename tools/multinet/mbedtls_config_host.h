// mbedTLS configuration of the host's MicroPython for the multi_net suite: the unix port's
// own (ports/unix/mbedtls/mbedtls_config_port.h), plus what the image's configuration
// (ports/manticore/mbedtls/mbedtls_config_port.h) adds that the tests can see:
// SSLSocket.getpeercert(), which extmod/modtls_mbedtls.c offers only with this.
#define MBEDTLS_SSL_KEEP_PEER_CERTIFICATE

#include "mbedtls/mbedtls_config_port.h"
