-- Argo CD health of a ciclo.dev TrainingRun, read from the kstatus conditions ciclo writes
-- (Ready, Reconciling, Stalled, with status.observedGeneration) the way Flux reads them,
-- plus Suspended (spec.suspend), which kstatus has no word for. Argo CD opens no string
-- library for a health script, so none is used here.

local function condition(type)
  for _, c in ipairs(obj.status.conditions or {}) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function holds(c)
  return c ~= nil and c.status == "True"
end

-- "Reason: message", or whichever of the two is there.
local function said(c)
  local reason, message = c.reason or "", c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if message ~= "" then
    return message
  end
  return reason
end

local function health()
  -- A status written for an older spec says nothing about the current one.
  if obj.status == nil or obj.status.observedGeneration == nil then
    return "Progressing", "Waiting for the ciclo operator to report on this TrainingRun"
  end
  local generation = obj.metadata.generation
  if generation ~= nil and obj.status.observedGeneration < generation then
    return "Progressing", "Waiting for the ciclo operator to report on generation " .. generation
      .. " (the status describes generation " .. obj.status.observedGeneration .. ")"
  end
  local ready = condition("Ready")
  local reconciling = condition("Reconciling")
  local stalled = condition("Stalled")
  if holds(reconciling) then
    return "Progressing", said(reconciling)
  end
  if holds(stalled) then
    return "Degraded", said(stalled)
  end
  if holds(ready) then
    return "Healthy", said(ready)
  end
  if ready ~= nil and ready.reason == "Suspended" then
    return "Suspended", said(ready)
  end
  if ready ~= nil then
    return "Progressing", said(ready)
  end
  return "Progressing", "Waiting for the Ready condition"
end

local status, message = health()
return {status = status, message = message}
