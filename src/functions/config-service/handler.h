/* handler.h: config-service's routes (CONTRACT §9): configuration, feature
 * flags and their OpenFeature Remote Evaluation Protocol endpoints. */
#ifndef PX_CS_HANDLER_H
#define PX_CS_HANDLER_H

#include "kernel/app.h"

extern const struct px_function px_fn_config_service;

#endif
