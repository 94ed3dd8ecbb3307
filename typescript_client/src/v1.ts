/**
 * Every generated module of the headwater.v1 protos (messages, enums, service descriptors).
 * test/exports.test.ts fails when a generated file is missing here.
 */
export * from "./gen/headwater/v1/concurrency_limits_pb.js";
export * from "./gen/headwater/v1/deployments_pb.js";
export * from "./gen/headwater/v1/engine_pb.js";
export * from "./gen/headwater/v1/flow_runs_pb.js";
export * from "./gen/headwater/v1/flows_pb.js";
export * from "./gen/headwater/v1/logs_pb.js";
export * from "./gen/headwater/v1/schedules_pb.js";
export * from "./gen/headwater/v1/states_pb.js";
export * from "./gen/headwater/v1/task_runs_pb.js";
export * from "./gen/headwater/v1/work_pools_pb.js";
export * from "./gen/headwater/v1/workers_pb.js";
