-- Argo CD health check for glideslope.dev/Release.
-- Install under argocd-cm: resource.customizations.health.glideslope.dev_Release
hs = {}
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Glideslope operator"
  return hs
end
local st = obj.status
if st.observedGeneration == nil or obj.metadata.generation == nil or st.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the new spec"
  return hs
end
if st.conditions ~= nil then
  for _, c in ipairs(st.conditions) do
    if c.type == "Degraded" and c.status == "True" and c.reason == "InvalidSpec" then
      hs.status = "Degraded"
      hs.message = c.message
      return hs
    end
  end
end
local phase = st.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Paused" or phase == "Gated" then
  hs.status = "Suspended"
elseif phase == "RolledBack" or phase == "Failed" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = st.message
return hs
