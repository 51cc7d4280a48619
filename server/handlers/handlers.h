/* handlers.h - thin handlers: parse the request, call lib/, map the result. */
#ifndef LANDLORD_SERVER_HANDLERS_H
#define LANDLORD_SERVER_HANDLERS_H

#include "../reply.h"
#include "../request.h"
#include "../stream.h"
#include "../waiter.h"

enum MHD_Result h_root_get(ll_req *req);
enum MHD_Result h_healthz_get(ll_req *req);
enum MHD_Result h_readyz_get(ll_req *req);
enum MHD_Result h_openapi_get(ll_req *req);

enum MHD_Result h_tenants_list(ll_req *req);
enum MHD_Result h_tenants_create(ll_req *req);
enum MHD_Result h_tenants_get(ll_req *req);
enum MHD_Result h_tenants_update(ll_req *req);
enum MHD_Result h_tenants_delete(ll_req *req);
enum MHD_Result h_tenants_history(ll_req *req);

enum MHD_Result h_tiers_list(ll_req *req);
enum MHD_Result h_tiers_get(ll_req *req);
enum MHD_Result h_tiers_put(ll_req *req);
enum MHD_Result h_tiers_delete(ll_req *req);

enum MHD_Result h_audit_list(ll_req *req);

enum MHD_Result h_operations_get(ll_req *req);

enum MHD_Result h_releases_create(ll_req *req);
enum MHD_Result h_releases_list(ll_req *req);
enum MHD_Result h_releases_get(ll_req *req);
enum MHD_Result h_releases_delete(ll_req *req);

enum MHD_Result h_rollouts_create(ll_req *req);
enum MHD_Result h_rollouts_list(ll_req *req);
enum MHD_Result h_rollouts_get(ll_req *req);
enum MHD_Result h_rollouts_pause(ll_req *req);
enum MHD_Result h_rollouts_resume(ll_req *req);
enum MHD_Result h_rollouts_abort(ll_req *req);
enum MHD_Result h_rollouts_rollback(ll_req *req);

enum MHD_Result h_events_stream(ll_req *req);
enum MHD_Result h_metrics_get(ll_req *req);

enum MHD_Result h_webhooks_create(ll_req *req);
enum MHD_Result h_webhooks_list(ll_req *req);
enum MHD_Result h_webhooks_get(ll_req *req);
enum MHD_Result h_webhooks_delete(ll_req *req);
enum MHD_Result h_webhooks_deliveries(ll_req *req);

#endif
