import dagre, { type EdgeLabel, type GraphLabel, type NodeLabel } from "@dagrejs/dagre";
import { Controls, type Edge, Handle, type Node, type NodeProps, Position, ReactFlow } from "@xyflow/react";
import { useMemo } from "react";
import type { TaskDefinition, TaskRunRecord } from "../types";

const NODE_W = 190;
const NODE_H = 58;

type TaskNodeData = { taskId: string; label: string; status: string; reusedFrom: string | null };
type TaskNodeType = Node<TaskNodeData, "task">;

/** The status a task node shows: its record's, REUSED when taken from an earlier run, else PENDING. */
export function taskNodeStatus(record: TaskRunRecord | undefined): string {
  if (record === undefined) return "PENDING";
  if (record.reusedFrom !== null && record.reusedFrom !== undefined && record.reusedFrom !== "") return "REUSED";
  return record.status;
}

function TaskNode({ data }: NodeProps<TaskNodeType>) {
  return (
    <div
      className={`task-node status-${data.status}`}
      data-testid="task-node"
      data-task-id={data.taskId}
      data-status={data.status}
      title={data.reusedFrom !== null ? `${data.taskId}: reused from run ${data.reusedFrom}` : data.taskId}
    >
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <span className="task-node-label">{data.label}</span>
      <span className="task-node-status">{data.status === "REUSED" ? "reused" : data.status}</span>
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </div>
  );
}

const nodeTypes = { task: TaskNode };

interface Layout {
  positions: Map<string, { x: number; y: number }>;
  edges: Edge[];
  signature: string;
}

/** Left-to-right dagre layout of the tasks and their `depends`. */
function layoutOf(ids: readonly string[], depends: ReadonlyMap<string, readonly string[]>): Layout {
  const g = new dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>();
  g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 60, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  const known = new Set(ids);
  for (const id of ids) g.setNode(id, { width: NODE_W, height: NODE_H });
  const edges: Edge[] = [];
  for (const id of ids)
    for (const dep of depends.get(id) ?? []) {
      if (!known.has(dep)) continue;
      g.setEdge(dep, id);
      edges.push({ id: `${dep}->${id}`, source: dep, target: id, focusable: false });
    }
  dagre.layout(g);
  const positions = new Map<string, { x: number; y: number }>();
  for (const id of ids) {
    const n = g.node(id);
    positions.set(id, { x: (n.x ?? 0) - NODE_W / 2, y: (n.y ?? 0) - NODE_H / 2 });
  }
  return { positions, edges, signature: `${ids.join(",")}|${edges.map((e) => e.id).join(",")}` };
}

/**
 * The read-only DAG of a workflow, each node coloured by its task's status. `tasks` is the
 * workflow's definition (null when the workflow was removed: nodes come from the records alone).
 */
export function Dag({
  tasks,
  records,
  onTaskClick,
}: {
  tasks: Record<string, TaskDefinition> | null;
  records: ReadonlyMap<string, TaskRunRecord>;
  onTaskClick?: (taskId: string) => void;
}) {
  const recordIds = [...records.keys()].sort().join(",");
  const layout = useMemo(() => {
    const ids = tasks !== null ? Object.keys(tasks) : recordIds === "" ? [] : recordIds.split(",");
    const depends = new Map<string, readonly string[]>();
    if (tasks !== null) for (const [id, t] of Object.entries(tasks)) depends.set(id, t.depends ?? []);
    return layoutOf(ids, depends);
  }, [tasks, recordIds]);
  const nodes = useMemo<TaskNodeType[]>(
    () =>
      [...layout.positions].map(([id, position]) => {
        const record = records.get(id);
        const name = tasks?.[id]?.name;
        return {
          id,
          type: "task",
          position,
          width: NODE_W,
          height: NODE_H,
          data: {
            taskId: id,
            label: name !== undefined && name !== "" && name !== id ? `${name} (${id})` : id,
            status: taskNodeStatus(record),
            reusedFrom: record?.reusedFrom ?? null,
          },
        };
      }),
    [layout, records, tasks],
  );
  return (
    <div className="dag" data-testid="dag">
      {nodes.length === 0 ? (
        <p className="empty">No tasks to show.</p>
      ) : (
        <ReactFlow
          key={layout.signature}
          nodes={nodes}
          edges={layout.edges}
          nodeTypes={nodeTypes}
          nodesDraggable={false}
          nodesConnectable={false}
          elementsSelectable={false}
          edgesFocusable={false}
          zoomOnScroll={false}
          preventScrolling={false}
          fitView
          fitViewOptions={{ maxZoom: 1 }}
          minZoom={0.2}
          {...(onTaskClick !== undefined && { onNodeClick: (_e, node) => onTaskClick(node.id) })}
        >
          <Controls showInteractive={false} />
        </ReactFlow>
      )}
    </div>
  );
}
