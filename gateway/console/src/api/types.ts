// Names for the generated API types (schema.gen.ts, from the gateway's OpenAPI document).
import type { components } from "./schema.gen";

type Schemas = components["schemas"];

export type Session = Schemas["v1Session"];
export type Message = Schemas["v1Message"];
export type ApiEvent = Schemas["v1Event"];
export type FileEntry = Schemas["v1FileEntry"];
export type FileTree = Schemas["v1GetFileTreeResponse"];
export type FileContent = Schemas["v1ReadFileResponse"];
export type Process = Schemas["v1Process"];
export type PortPreview = Schemas["v1PortPreview"];
export type Preview = Schemas["v1GetPreviewResponse"];
export type Run = Schemas["v1Run"];
export type Plan = Schemas["v1Plan"];
export type Artifact = Schemas["v1Artifact"];
export type Agent = Schemas["v1Agent"];
export type Checkpoint = Schemas["v1Checkpoint"];
export type CheckpointPage = Schemas["v1ListCheckpointsResponse"];
export type CheckpointDiff = Schemas["v1DiffCheckpointResponse"];
export type FileDiff = Schemas["v1FileDiff"];
export type CreatedCheckpoint = Schemas["v1CreateCheckpointResponse"];
export type Restored = Schemas["v1RestoreCheckpointResponse"];
export type User = Schemas["v1GetMeResponse"];
export type TokenPair = Schemas["v1LoginResponse"];

/**
 * The error body of every failed call. The committed document states it as ErrorBody once the
 * gateway's runtime patch moves into it; until then the same shape is spelled out here.
 */
export type ErrorBody = Schemas extends { ErrorBody: infer E }
  ? E
  : { detail: string; code: string; message: string; reason?: string };
